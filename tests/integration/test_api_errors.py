"""Bad input never answers 500: every refusal is the JSON error envelope with the right status."""

from __future__ import annotations

import base64

import pytest

from tests.integration.conftest import Api


def error_of(response) -> dict:  # type: ignore[no-untyped-def]
    """The error object of an error response, after checking the envelope's shape."""
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


def test_malformed_json_is_400_with_a_clear_message(api: Api) -> None:
    response = api.call("POST", "/workflows", content=b'{"name": "x",', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json" and "not valid JSON" in error_of(response)["message"]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": 3}, {"name": "x", "unknown": 1}, [], "text", {"name": "x", "tasks": "no"}],
    ids=["missing", "empty", "wrong-type", "unknown-field", "list", "string", "tasks-not-a-list"],
)
def test_invalid_bodies_are_422_naming_the_field(api: Api, body: object) -> None:
    response = api.call("POST", "/workflows", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid" and error["details"] and "loc" in error["details"][0]


def test_numbers_out_of_range_and_nan_are_refused(api: Api) -> None:
    for body in (
        {"task": "add", "priority": 10**30},
        {"task": "add", "timeout": -1},
        {"task": "add", "max_retries": -1},
    ):
        assert api.call("POST", "/tasks", json=body).status_code == 422, body
    nan = api.call(
        "POST", "/tasks", content=b'{"task": "add", "timeout": NaN}', headers={"Content-Type": "application/json"}
    )
    assert nan.status_code in (400, 422)


def test_half_a_surrogate_pair_is_refused_and_the_lists_keep_working(api: Api) -> None:
    json_type = {"Content-Type": "application/json"}
    for escape in (b"\\ud800", b"\\uDC00", b"x\\ud83d"):  # a lone high, a lone low, a high cut off
        body = b'{"task": "add", "args": ["' + escape + b'", 1]}'
        refused = api.call("POST", "/tasks", content=body, headers=json_type)
        assert refused.status_code == 422 and "surrogate" in error_of(refused)["message"], body
    paired = api.call("POST", "/tasks", content=b'{"task": "add", "args": ["\\ud83d\\ude00", "!"]}', headers=json_type)
    assert paired.status_code == 202  # a whole pair is an emoji
    listed = api.call("GET", "/tasks")
    assert listed.status_code == 200 and [t["task_id"] for t in listed.json()["items"]] == [paired.json()["task_id"]]


@pytest.mark.parametrize("text", ["x", "\\ud83d\\ude00"])  # an escape of \ud has the surrogate check parse it too
def test_json_nested_too_deep_is_refused_and_the_lists_keep_working(api: Api, text: str) -> None:
    body = '{"task": "add", "args": [1, 2], "metadata": {"deep": ' + "[" * 400 + f'"{text}"' + "]" * 400 + "}}"
    refused = api.call("POST", "/tasks", content=body.encode(), headers={"Content-Type": "application/json"})
    assert refused.status_code == 422 and "more than 64 deep" in error_of(refused)["message"]
    within: object = 1
    for _ in range(60):
        within = {"k": within}
    accepted = api.call("POST", "/tasks", json={"task": "add", "args": [1, 2], "metadata": {"m": within}})
    assert accepted.status_code == 202 and api.call("GET", "/tasks").status_code == 200


def test_cyclic_dependencies_are_409_naming_the_cycle(api: Api) -> None:
    tasks = [
        {"task_id": "a", "task": "add", "args": [1, 1], "dependencies": ["c"]},
        {"task_id": "b", "task": "add", "args": [1, 1], "dependencies": ["a"]},
        {"task_id": "c", "task": "add", "args": [1, 1], "dependencies": ["b"]},
    ]
    response = api.call("POST", "/workflows", json={"name": "loop", "tasks": tasks})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "cycle" and set(error["details"]["cycle"]) == {"a", "b", "c"}
    assert "remove one of these dependencies" in error["message"]
    me = {"task_id": "a", "task": "add", "dependencies": ["a"]}
    self_loop = api.call("POST", "/workflows", json={"name": "me", "tasks": [me]})
    assert self_loop.status_code == 409


def test_unknown_dependencies_and_duplicate_ids_are_409(api: Api) -> None:
    unknown = api.call("POST", "/workflows", json={"name": "u", "tasks": [{"task": "add", "dependencies": ["ghost"]}]})
    assert unknown.status_code == 409 and error_of(unknown)["code"] == "unknown_dependency"
    twice = [{"task_id": "a", "task": "add"}, {"task_id": "a", "task": "add"}]
    assert api.call("POST", "/workflows", json={"name": "d", "tasks": twice}).status_code == 409


def test_a_second_workflow_of_the_same_name_is_409_naming_the_first(api: Api) -> None:
    first = api.call("POST", "/workflows", json={"name": "nightly"})
    assert first.status_code == 201
    again = api.call("POST", "/workflows", json={"name": "nightly", "tasks": [{"task": "add"}]})
    assert again.status_code == 409 and first.json()["workflow_id"] in error_of(again)["message"]
    assert [w["name"] for w in api.call("GET", "/workflows").json()["items"]].count("nightly") == 1


def test_unknown_task_names_and_foreign_import_paths_are_refused(api: Api) -> None:
    unknown = api.call("POST", "/tasks", json={"task": "no_such_task"})
    assert unknown.status_code == 404 and "@task" in error_of(unknown)["message"]
    foreign = api.call("POST", "/tasks", json={"task": "os:system", "args": ["true"]})
    assert foreign.status_code == 422 and error_of(foreign)["code"] == "bad_import_path"
    assert api.call("POST", "/tasks", json={"task": "api_flows:nothing"}).status_code == 422
    both = api.call("POST", "/tasks", json={"task": "add", "command": "true"})
    assert both.status_code == 422 and "exactly one" in error_of(both)["message"]
    wid = api.call("POST", "/workflows", json={"name": "w"}).json()["workflow_id"]
    assert api.call("POST", f"/workflows/{wid}/tasks", json={"task": "no_such_task"}).status_code == 404


def test_unknown_ids_are_404(api: Api) -> None:
    for path in ("/workflows/none", "/workflows/none/versions", "/runs/none", "/tasks/none", "/api-keys/none"):
        response = api.call("GET", path)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found", path
    assert api.call("POST", "/workflows/none/runs", json={}).status_code == 404


def test_a_workflow_without_tasks_cannot_run(api: Api) -> None:
    wid = api.call("POST", "/workflows", json={"name": "empty"}).json()["workflow_id"]
    response = api.call("POST", f"/workflows/{wid}/runs", json={})
    assert response.status_code == 422 and "add tasks" in error_of(response)["message"]


def test_an_oversized_body_is_413_before_parsing(api: Api) -> None:
    big = b'{"name": "' + b"x" * (70 * 1024) + b'"}'
    response = api.call("POST", "/workflows", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit counts the bytes as they arrive
        yield b'{"name": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    streamed = api.call("POST", "/workflows", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and error_of(streamed)["code"] == "payload_too_large"
    assert api.call("GET", "/audit").json()["items"][0]["outcome"] == 413


def test_bad_query_parameters_and_cursors_are_422(api: Api) -> None:
    for params in ({"limit": 0}, {"limit": 10**6}, {"state": "bogus"}, {"cursor": "not-a-cursor"}, {"since": "later"}):
        response = api.call("GET", "/runs", params=params)
        assert response.status_code == 422 and error_of(response), params
    task_cursor = api.call("GET", "/tasks", params={"cursor": api.call("GET", "/runs").json()["next_cursor"] or "bz0x"})
    assert task_cursor.status_code == 422
    huge = [("/tasks", f"s:{2**63}"), ("/alerts", f"o:{2**63 - 1}"), ("/audit", f"o:{2**64}"),
            ("/runs", f"k:1.0:{2**63}"), ("/runs", "k:nan:1"), ("/runs", "k:inf:1")]  # fmt: skip
    for path, position in huge:
        cursor = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
        response = api.call("GET", path, params={"cursor": cursor})
        assert response.status_code == 422 and "not valid here" in error_of(response)["message"], (path, position)


def test_unknown_paths_and_methods_answer_in_the_envelope(api: Api) -> None:
    missing = api.client.get("/no/such/path")
    assert missing.status_code == 404 and "/docs" in error_of(missing)["message"]
    wrong = api.client.put("/health")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


def test_answers_are_not_cached_or_sniffed_and_static_files_stay_cacheable(api: Api) -> None:
    created = api.call("POST", "/api-keys", json={"name": "ci", "role": "viewer"})
    answers = [created, api.call("GET", "/tasks"), api.call("GET", "/audit"), api.client.get("/tasks")]
    answers.append(api.client.post("/tasks", content=b"x" * 70_000, headers={"X-API-Key": api.admin_key}))
    for response in answers:
        assert response.headers["cache-control"] == "no-store", response.request.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert answers[-1].status_code == 413, "refused by the body limit, before any route"
    static = api.client.get("/ui/static/app.css")
    assert static.headers["x-content-type-options"] == "nosniff" and "cache-control" not in static.headers
    page = api.client.get("/login")
    assert page.headers.get_list("cache-control") == ["no-store"], "the pages' own headers are not doubled"
