import pytest

from funnel_site.events.loaders import LOADERS, MappingError, MissingColumnError, MissingFileError

from .canonical import assert_canonical
from .conftest import dataset

CJ = {
    "campaign_descriptions.csv": "campaign_id,campaign_type,start_date,end_date\n"
    "1,Type B,2017-03-03,2017-04-09\n8,Type A,2017-05-08,2017-06-25\n",
    "campaigns.csv": "campaign_id,household_id\n1,105\n8,105\n9,77\n",
    "coupon_redemptions.csv": "household_id,coupon_upc,campaign_id,redemption_date\n105,51380041013,8,2017-05-10\n",
    "transactions_sample.csv": (
        "household_id,store_id,basket_id,product_id,quantity,sales_value,retail_disc,coupon_disc,"
        "coupon_match_disc,week,transaction_timestamp\n"
        "105,309,B1,940996,1.0,3.86,0.43,0.0,0.0,5,2017-01-28 19:06:53\n"
        "77,368,B2,873902,1.0,1.59,0.9,0.0,0.0,10,2017-03-01 03:31:57\n"
        "105,309,B1,940997,2.0,1.10,0.0,0.5,0.0,5,2017-01-28 19:05:00\n"
        "105,309,B3,940997,x,1.10,0.0,0.5,0.0,5,2017-01-28 19:05:00\n"
    ),
}


def make(write, files):
    for name, text in files.items():
        path = write(f"d/{name}", text)
    return path.parent


def test_complete_journey(write):
    folder = make(write, CJ)
    result = list(LOADERS["completejourney"](folder, mapping=None))
    items = [item for _, item, error in result if not error]
    errors = [(line, error) for line, _, error in result if error]
    assert errors == [
        (4, "campaigns.csv: campaign_id: unknown campaign '9'"),
        (5, "transactions_sample.csv: quantity: not a number ('x')"),
    ]
    assert items[0] == {
        "contact_id": "105",
        "event": "Campaign Received",
        "timestamp": "2017-03-03T12:00:00Z",
        "campaign": "cj-1",
        "channel": "direct_mail",
        "message_id": "cj:campaign:1:105",
        "properties": {
            "campaign_type": "Type B",
            "campaign_start": "2017-03-03",
            "campaign_end": "2017-04-09",
        },
    }
    assert items[2] == {
        "contact_id": "105",
        "event": "Coupon Redeemed",
        "timestamp": "2017-05-10T12:00:00Z",
        "campaign": "cj-8",
        "channel": "direct_mail",
        "message_id": "cj:coupon:105:8:51380041013:2017-05-10",
        "properties": {"coupon_upc": "51380041013"},
    }
    baskets = [(line, item) for line, item, _ in result if item and item["event"] == "Order Completed"]
    assert baskets[0] == (
        2,
        {
            "contact_id": "105",
            "event": "Order Completed",
            "timestamp": "2017-01-28T19:05:00Z",
            "value": 4.96,
            "message_id": "cj:basket:B1",
            "properties": {
                "basket_id": "B1",
                "store_id": "309",
                "items": 2,
                "quantity": 3.0,
                "retail_disc": 0.43,
                "coupon_disc": 0.5,
            },
        },
    )
    assert baskets[1][1]["message_id"] == "cj:basket:B2"
    for item in items:
        assert_canonical(item)


def test_complete_journey_checks_every_file_before_yielding(write):
    files = dict(CJ)
    files["transactions_sample.csv"] = (
        "household_id,store_id,basket_id,quantity,retail_disc,coupon_disc,transaction_timestamp\n"
    )
    with pytest.raises(MissingColumnError) as info:
        LOADERS["completejourney"](make(write, files), mapping=None)
    assert str(info.value) == "missing required column 'sales_value' in transactions_sample.csv"


def test_complete_journey_missing_file_and_mapping(write, tmp_path):
    files = dict(CJ)
    del files["campaigns.csv"]
    with pytest.raises(MissingFileError):
        LOADERS["completejourney"](make(write, files), mapping=None)
    with pytest.raises(MappingError):
        LOADERS["completejourney"](tmp_path, mapping={"contact_id": "x"})


OLIST = {
    "olist_marketing_qualified_leads_dataset.csv": "mql_id,first_contact_date,landing_page_id,origin\n"
    "m1,2018-02-01,lp1,social\nm2,2018-02-02,lp2,\n",
    "olist_closed_deals_dataset.csv": "mql_id,seller_id,sdr_id,sr_id,won_date,business_segment,lead_type,"
    "lead_behaviour_profile,has_company,has_gtin,average_stock,business_type,"
    "declared_product_catalog_size,declared_monthly_revenue\n"
    "m1,s1,sd1,sr1,2018-02-26 19:58:54,pet,online_medium,cat,,,,reseller,,0.0\n"
    "m2,s2,sd2,sr2,someday,pet,online_medium,cat,,,,reseller,,0.0\n",
}


def test_olist(write):
    result = list(LOADERS["olist"](make(write, OLIST), mapping=None))
    assert result[0] == (
        2,
        {
            "contact_id": "m1",
            "event": "Lead Created",
            "timestamp": "2018-02-01T12:00:00Z",
            "message_id": "olist:lead:m1",
            "properties": {"landing_page_id": "lp1"},
            "channel": "social",
        },
        None,
    )
    assert "channel" not in result[1][1]
    assert result[2] == (
        2,
        {
            "contact_id": "m1",
            "event": "Deal Won",
            "timestamp": "2018-02-26T19:58:54Z",
            "message_id": "olist:won:m1",
            "properties": {
                "seller_id": "s1",
                "sdr_id": "sd1",
                "sr_id": "sr1",
                "business_segment": "pet",
                "lead_type": "online_medium",
                "lead_behaviour_profile": "cat",
                "business_type": "reseller",
                "declared_monthly_revenue": 0.0,
            },
        },
        None,
    )
    assert result[3] == (3, None, "olist_closed_deals_dataset.csv: won_date: not a date and time ('someday')")


def test_real_complete_journey(datasets):
    counts = {}
    for _, item, error in LOADERS["completejourney"](dataset("completejourney"), mapping=None):
        assert error is None, error
        counts[item["event"]] = counts.get(item["event"], 0) + 1
    assert counts == {"Campaign Received": 6_589, "Coupon Redeemed": 2_102, "Order Completed": 47_243}


def test_real_olist(datasets):
    counts = {}
    for _, item, error in LOADERS["olist"](dataset("olist_marketing_funnel"), mapping=None):
        assert error is None, error
        assert_canonical(item)
        counts[item["event"]] = counts.get(item["event"], 0) + 1
    assert counts == {"Lead Created": 8_000, "Deal Won": 842}
