"""schemathesis against the OpenAPI spec, as an admin and as an officer: no input makes a 5xx.

Every operation of ``/api/v1/openapi.json`` gets examples that fit the schema and examples that do
not (schemathesis' positive and negative modes), with the login's token, over HTTP to a real
gateway (:class:`tests.server.ApiServer`). The examples are bounded and derandomised, so that the
run is the same each time and takes well under a minute on two cores. ``POST /auth/logout`` ends
the session of the token it is given, so each of its examples gets a token of its own.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from tests.server import ApiServer

EXAMPLES = 8  # per operation, mode and login
SLOW = {"POST /api/v1/auth/token": 3}  # an unknown name costs a full argon2 hash
OWN_TOKEN = {"POST /api/v1/auth/logout"}  # ends its token's session


@pytest.mark.parametrize("login", ["admin", "zhang"])
def test_no_input_makes_a_server_error(server: ApiServer, login: str) -> None:
    for sensor in ("hengyuan/gas/ch4", "shimen/gas/ch4", "far/gas/ch4"):  # alarms 1 to 3 exist
        server.raise_alarm(sensor)
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
    headers = {"Authorization": f"Bearer {server.token(login)}"}
    root = f"http://127.0.0.1:{server.port}"
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in GenerationMode:

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=SLOW.get(operation.label, EXAMPLES), deadline=None, database=None,
                          derandomize=True, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
                def call(case: schemathesis.Case) -> None:
                    own = {"Authorization": f"Bearer {server.token(login)}"} \
                        if case.operation.label in OWN_TOKEN else {}
                    r = case.call(base_url=root, session=session, headers={**headers, **own}, timeout=10)
                    statuses[r.status_code] += 1
                    if r.status_code >= 500:
                        errors.append(f"{r.status_code} {r.text[:200]}\n  {case.as_curl_command()[:500]}")

                try:
                    call()
                except Unsatisfiable:  # no example of this mode exists (nothing to get wrong)
                    pass
    total = sum(statuses.values())
    print(f"{login}: {total} requests, by status {dict(sorted(statuses.items()))}")
    assert errors == [], "\n".join(errors[:10])
    assert total > 200 and sum(n for s, n in statuses.items() if s < 300) > 20  # not all refused
