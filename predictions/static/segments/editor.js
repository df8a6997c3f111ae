// The segment definition editor: builds the JSON grammar of predictions/segments/definition.py
// from form controls, keeps the JSON textarea in step, and asks the server for a live preview.
// Plain JS, no dependencies (the product runs offline).
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  if (!form) return;
  var options = JSON.parse(document.getElementById("segment-options").textContent);
  var initial = JSON.parse(document.getElementById("segment-definition").textContent);
  var textarea = document.getElementById("definition-json");
  var builder = document.getElementById("builder");
  var sizeEl = document.getElementById("preview-size");
  var noteEl = document.getElementById("preview-note");
  var sampleEl = document.getElementById("preview-sample");
  var LEAVES = ["score", "stage", "funnel", "trait", "email"];
  var root;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function select(values, current, onchange, labels, cls) {
    var s = el("select", {onchange: function () { onchange(s.value); changed(); }, class: cls || ""});
    values.forEach(function (v, i) {
      var o = el("option", {value: v, text: labels ? labels[i] : v});
      if (String(v) === String(current)) o.selected = true;
      s.appendChild(o);
    });
    return s;
  }
  function input(type, value, oninput, attrs) {
    var i = el("input", Object.assign({type: type, value: value == null ? "" : value}, attrs || {}));
    i.addEventListener("input", function () { oninput(i.value); changed(false); });
    return i;
  }

  // --- model <-> JSON -------------------------------------------------------------------------
  function blank(kind) {
    if (kind === "score") return {kind: kind, target: options.targets[0], mode: "top_percent", amount: 10};
    if (kind === "stage") return {kind: kind, reached: "consideration", within: ""};
    if (kind === "funnel") return {kind: kind, id: (options.funnels[0] || {}).id || "", step: 1, within: ""};
    if (kind === "trait") return {kind: kind, key: "", op: "eq", value: ""};
    if (kind === "email") return {kind: kind, op: "ends_with", value: ""};
    return {kind: "group", group: {op: "or", items: [blank("score")]}};
  }
  function fromNode(node) {  // one item (condition or group), or null when not drawable
    if (!node || typeof node !== "object" || Object.keys(node).length !== 1) return null;
    var key = Object.keys(node)[0], v = node[key];
    if (key === "not") { var inner = fromNode(v); if (inner) inner.neg = !inner.neg; return inner; }
    if (key === "and" || key === "or") {
      var items = (v || []).map(fromNode);
      if (items.some(function (i) { return !i; })) return null;
      return {kind: "group", group: {op: key, items: items}};
    }
    if (key === "score") return {kind: key, target: v.target, mode: v.top_percent != null ? "top_percent" : "min_probability",
                                 amount: v.top_percent != null ? v.top_percent : v.min_probability};
    if (key === "stage") return {kind: key, reached: v.reached, within: v.not_next_within || ""};
    if (key === "funnel") return {kind: key, id: v.id, step: v.step, within: v.not_next_within || ""};
    if (key === "trait") return {kind: key, key: v.key, op: v.op,
                                 value: v.value === undefined ? "" : (Array.isArray(v.value) ? v.value.join(", ") : String(v.value))};
    if (key === "email") return {kind: key, op: v.op, value: v.value || ""};
    return null;
  }
  function traitValue(op, text) {
    if (op === "exists") return undefined;
    if (op === "gt" || op === "gte" || op === "lt" || op === "lte") return text === "" ? text : Number(text);
    if (op === "contains") return text;
    var one = function (t) {
      t = t.trim();
      try { var parsed = JSON.parse(t); if (typeof parsed !== "object") return parsed; } catch (e) { /* a string */ }
      return t;
    };
    return op === "in" ? text.split(",").map(one).filter(function (x) { return x !== ""; }) : one(text);
  }
  function toNode(item) {
    var node;
    if (item.kind === "group") node = groupNode(item.group);
    else if (item.kind === "score") {
      node = {score: {target: item.target}};
      node.score[item.mode] = item.amount === "" ? "" : Number(item.amount);
    } else if (item.kind === "stage") {
      node = {stage: {reached: item.reached}};
      if (item.within) node.stage.not_next_within = item.within;
    } else if (item.kind === "funnel") {
      node = {funnel: {id: Number(item.id), step: Number(item.step)}};
      if (item.within) node.funnel.not_next_within = item.within;
    } else if (item.kind === "trait") {
      node = {trait: {key: item.key, op: item.op}};
      var value = traitValue(item.op, item.value);
      if (value !== undefined) node.trait.value = value;
    } else {
      node = {email: {op: item.op}};
      if (item.op !== "exists") node.email.value = item.value;
    }
    return item.neg ? {not: node} : node;
  }
  function groupNode(group) {
    if (group.items.length === 1) return toNode(group.items[0]);
    var node = {};
    node[group.op] = group.items.map(toNode);
    return node;
  }

  // --- drawing ----------------------------------------------------------------------------------
  function fields(item) {
    var f = [];
    if (item.kind === "score") {
      f.push(select(options.targets, item.target, function (v) { item.target = v; }, null, "score-target"));
      f.push(select(["top_percent", "min_probability"], item.mode, function (v) {
        item.mode = v; item.amount = v === "top_percent" ? 10 : 0.5; draw();
      }, ["in the top %", "probability ≥"], "score-mode"));
      f.push(input("number", item.amount, function (v) { item.amount = v; },
                   {step: "any", min: "0", max: item.mode === "top_percent" ? "100" : "1", class: "score-amount",
                    "aria-label": "amount"}));
    } else if (item.kind === "stage") {
      f.push(el("span", {text: "reached"}));
      f.push(select(options.stages, item.reached, function (v) { item.reached = v; }, null, "stage-reached"));
      f.push(el("span", {text: "not the next within"}));
      f.push(input("text", item.within, function (v) { item.within = v.trim(); },
                   {placeholder: "e.g. 7d (blank: ever)", class: "text stage-within", "aria-label": "within"}));
    } else if (item.kind === "funnel") {
      if (!options.funnels.length) { f.push(el("span", {class: "warning", text: "no saved funnel yet"})); return f; }
      f.push(select(options.funnels.map(function (x) { return x.id; }), item.id, function (v) { item.id = v; item.step = 1; draw(); },
                    options.funnels.map(function (x) { return x.name; }), "funnel-id"));
      var funnel = options.funnels.filter(function (x) { return String(x.id) === String(item.id); })[0] || options.funnels[0];
      f.push(el("span", {text: "reached step"}));
      f.push(select(funnel.steps.map(function (_, i) { return i + 1; }), item.step, function (v) { item.step = v; },
                    funnel.steps.map(function (s, i) { return (i + 1) + ": " + s; }), "funnel-step"));
      f.push(el("span", {text: "not the next within"}));
      f.push(input("text", item.within, function (v) { item.within = v.trim(); }, {placeholder: "e.g. 2d", class: "text"}));
    } else if (item.kind === "trait") {
      f.push(input("text", item.key, function (v) { item.key = v; }, {placeholder: "trait key", class: "text trait-key"}));
      f.push(select(options.trait_ops, item.op, function (v) { item.op = v; draw(); }, null, "trait-op"));
      if (item.op !== "exists") f.push(input("text", item.value, function (v) { item.value = v; },
                                             {placeholder: item.op === "in" ? "a, b, c" : "value", class: "text trait-value"}));
    } else if (item.kind === "email") {
      f.push(select(options.email_ops, item.op, function (v) { item.op = v; draw(); }, null, "email-op"));
      if (item.op !== "exists") f.push(input("text", item.value, function (v) { item.value = v; },
                                             {placeholder: "@example.com", class: "text email-value"}));
    }
    return f;
  }
  function drawGroup(group, depth, onRemove) {
    var box = el("div", {class: "group"});
    box.appendChild(el("div", {class: "bar"}, [
      el("span", {text: depth ? "any/all of:" : "Members match"}),
      select(["and", "or"], group.op, function (v) { group.op = v; }, ["all of", "any of"], "group-op"),
    ].concat(onRemove ? [el("button", {type: "button", text: "remove group", onclick: onRemove})] : [])));
    group.items.forEach(function (item, index) {
      var remove = function () { group.items.splice(index, 1); if (!group.items.length) group.items.push(blank("score")); draw(); };
      var neg = el("input", {type: "checkbox", class: "negate", "aria-label": "not"});
      neg.checked = !!item.neg;
      neg.addEventListener("change", function () { item.neg = neg.checked; changed(); });
      var row = el("div", {class: "cond"}, [el("label", {}, [neg, document.createTextNode(" not")])]);
      if (item.kind === "group") {
        row.appendChild(drawGroup(item.group, depth + 1, remove));
      } else {
        row.appendChild(select(LEAVES, item.kind, function (v) {
          var fresh = blank(v); fresh.neg = item.neg; group.items[index] = fresh; draw();
        }, ["score", "stage", "saved funnel", "trait", "email"], "cond-kind"));
        fields(item).forEach(function (f) { row.appendChild(f); });
        row.appendChild(el("button", {type: "button", text: "×", title: "remove", onclick: remove}));
      }
      box.appendChild(row);
    });
    var adds = el("div", {class: "bar"}, [
      el("button", {type: "button", text: "+ condition", class: "add-condition",
                    onclick: function () { group.items.push(blank("stage")); draw(); }}),
    ]);
    if (depth < 2) adds.appendChild(el("button", {type: "button", text: "+ group", class: "add-group",
                                                  onclick: function () { group.items.push(blank("group")); draw(); }}));
    box.appendChild(adds);
    return box;
  }
  function draw() {
    builder.innerHTML = "";
    if (!root) {
      builder.appendChild(el("p", {class: "sub", text: "This definition is edited as JSON below."}));
    } else {
      builder.appendChild(drawGroup(root, 0, null));
    }
    changed();
  }
  function load(definition) {
    var item = fromNode(definition);
    if (!item) { root = null; return; }
    root = item.kind === "group" && !item.neg ? item.group : {op: "and", items: [item]};
  }

  // --- JSON and preview ---------------------------------------------------------------------------
  var timer = null, seq = 0;
  function changed() {
    if (root) textarea.value = JSON.stringify(groupNode(root), null, 1);
    clearTimeout(timer);
    timer = setTimeout(preview, 300);
  }
  function preview() {
    var definition;
    try { definition = JSON.parse(textarea.value); } catch (e) { show(null, "the JSON does not parse: " + e.message); return; }
    var mine = ++seq;
    sizeEl.textContent = "…";
    fetch(form.dataset.previewUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value},
      body: JSON.stringify({definition: definition}),
    }).then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (res) {
        if (mine !== seq) return;  // a newer preview is on its way
        if (res.ok) show(res.body, (res.body.warnings || []).join(" "));
        else show(null, res.body.error || "invalid definition");
      }).catch(function (e) { if (mine === seq) show(null, "preview failed: " + e); });
  }
  function show(body, note) {
    sizeEl.textContent = body ? body.size + (body.size === 1 ? " contact" : " contacts") : "—";
    noteEl.textContent = note || "";
    noteEl.className = body ? "warning" : "error";
    sampleEl.innerHTML = "";
    ((body && body.sample) || []).forEach(function (c) {
      sampleEl.appendChild(el("li", {text: c.contact_id + (c.email ? " · " + c.email : "")}));
    });
  }
  textarea.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(preview, 300); });
  textarea.addEventListener("change", function () {
    try { load(JSON.parse(textarea.value)); builder.innerHTML = ""; if (root) builder.appendChild(drawGroup(root, 0, null)); }
    catch (e) { /* left as typed; the preview says why */ }
  });
  load(initial);
  if (!root) textarea.value = JSON.stringify(initial, null, 1);
  draw();
})();
