#!/usr/bin/env python3
"""Checks that the fake BigQuery of tests/fake_bigquery speaks the real protocol: Google's own
`google-cloud-bigquery` client (with google-auth signing the service account's JWT for the fake's
token endpoint) must run a query through it and read every page, typed.

Run through the Rust test that starts the fake in front of a Postgres database:
    pip install google-cloud-bigquery
    cargo test --test warehouse_bigquery -- --ignored --nocapture the_official_python_client
Arguments: the fake's base URL, the key file, the project and the data set.
"""
import datetime
import decimal
import sys

from google.api_core.client_options import ClientOptions
from google.cloud import bigquery
from google.oauth2 import service_account


def main(base_url: str, key_file: str, project: str, dataset: str) -> None:
    credentials = service_account.Credentials.from_service_account_file(
        key_file, scopes=["https://www.googleapis.com/auth/bigquery.readonly"]
    )
    client = bigquery.Client(
        project=project,
        credentials=credentials,
        location="US",
        client_options=ClientOptions(api_endpoint=base_url),
    )
    config = bigquery.QueryJobConfig(default_dataset=f"{project}.{dataset}", use_legacy_sql=False)

    # 1. jobs.query, then getQueryResults page by page (the fake serves two rows a page).
    rows = client.query_and_wait(
        "SELECT id, region, total, placed_on, paid_at FROM orders ORDER BY id",
        job_config=config,
        page_size=2,
    )
    assert [field.field_type for field in rows.schema] == ["INTEGER", "STRING", "NUMERIC", "DATE", "TIMESTAMP"], rows.schema
    values = [tuple(row.values()) for row in rows]
    utc = datetime.timezone.utc
    assert values == [
        (1, "EMEA", decimal.Decimal("10.50"), datetime.date(2026, 1, 5), datetime.datetime(2026, 1, 5, 10, 0, tzinfo=utc)),
        (2, "APAC", decimal.Decimal("20.25"), datetime.date(2026, 1, 6), datetime.datetime(2026, 1, 6, 11, 30, tzinfo=utc)),
        (3, "EMEA", decimal.Decimal("5.00"), datetime.date(2026, 2, 1), None),
    ], values

    # 2. An invalid query is Google's 400 invalidQuery, raised as BadRequest.
    try:
        list(client.query_and_wait("SELECT missing FROM orders", job_config=config))
    except Exception as error:  # google.api_core.exceptions.BadRequest
        assert type(error).__name__ == "BadRequest", repr(error)
        assert "missing" in str(error), str(error)
    else:
        raise AssertionError("the invalid query was answered")

    # 3. A dry run gives the bytes processed through jobs.insert.
    dry = client.query(
        "SELECT COUNT(*) FROM orders",
        job_config=bigquery.QueryJobConfig(default_dataset=f"{project}.{dataset}", dry_run=True, use_query_cache=False),
    )
    assert dry.total_bytes_processed is not None and dry.total_bytes_processed > 0, dry.total_bytes_processed
    assert dry.statement_type == "SELECT", dry.statement_type
    print("OK")


if __name__ == "__main__":
    main(*sys.argv[1:5])
