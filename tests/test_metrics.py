"""GET /metrics: Prometheus text for the owner's token or the scrape secret; the counters move."""

from __future__ import annotations

import re

from tests.conftest import auth, new_account

SECRET = {"Authorization": "Bearer scrape-secret"}  # config/test.toml's metrics_token


async def test_metrics_count_requests_by_route_and_status(client, owner_token):
    await client.get("/users/user", headers=auth(owner_token))
    await client.get("/users/user")  # 401
    await client.get("/nowhere")  # 404
    response = await client.get("/metrics", headers=auth(owner_token))
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert 'hatd_requests_total{route="list_accounts",method="GET",status="200"} 1' in text
    assert 'hatd_requests_total{route="list_accounts",method="GET",status="401"} 1' in text
    assert 'hatd_requests_total{route="unmatched",method="GET",status="404"} 1' in text
    assert 'hatd_request_seconds_count{route="list_accounts",method="GET",status="200"} 1' in text
    assert re.search(r'hatd_pool_connections\{state="max"\} 4\n', text)
    assert re.search(r"hatd_values_stored_estimate \d+\n", text)
    second = await (await client.get("/metrics", headers=SECRET)).text()
    assert 'hatd_requests_total{route="metrics",method="GET",status="200"} 1' in second


async def test_metrics_are_the_owners_or_the_scrapers(client, owner_token):
    assert (await client.get("/metrics", headers=SECRET)).status == 200
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/metrics")).status == 401
    _, token = await new_account(client, owner_token, role="dataCredit")
    response = await client.get("/metrics", headers=auth(token))
    assert response.status == 403
    assert await response.json() == {
        "message": "Forbidden",
        "cause": "GET /metrics is for owner (or the scrape secret); this is a dataCredit token",
    }
