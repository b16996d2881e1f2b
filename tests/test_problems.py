"""The problem answers themselves (problems.py): each field of the RFC 9457 body, the status, the
headers, what an error carries to the middleware. The routes' answers are checked against the spec
in test_contract.py; these pin the builder, one field at a time (the mutation run's tests for it)."""

from __future__ import annotations

import json

import pytest
from appwrite_token_exchange.problems import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    PROBLEMS,
    ProblemError,
    problem_body,
    problem_response,
    response_for,
)


def test_the_body_has_every_rfc_9457_member_and_our_code() -> None:
    body = json.loads(problem_body("rate_limited", "slow down"))
    assert body == {
        "type": PROBLEM_TYPE_BASE + "rate_limited",
        "title": "Too many requests",
        "status": 429,
        "detail": "slow down",
        "code": "rate_limited",
    }


def test_extra_members_are_added_and_none_is_no_extra() -> None:
    assert json.loads(problem_body("bad_request", "d", {"field": "x"}))["field"] == "x"
    assert set(json.loads(problem_body("bad_request", "d", None))) == {"type", "title", "status", "detail", "code"}


def test_an_unknown_code_is_a_programming_error_not_a_500_body() -> None:
    with pytest.raises(KeyError):
        problem_body("no_such_code", "d")


def test_the_response_carries_status_type_body_headers_and_no_store() -> None:
    response = problem_response("upstream_timeout", "late", {"Retry-After": "3"}, {"attempts": 2})
    assert response.status == 504
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.headers["Retry-After"] == "3"
    assert response.headers["Cache-Control"] == "no-store"
    assert isinstance(response.body, bytes)
    body = json.loads(response.body)
    assert body["code"] == "upstream_timeout" and body["detail"] == "late" and body["attempts"] == 2
    assert body["status"] == 504 and body["title"] == PROBLEMS["upstream_timeout"].title


def test_an_error_keeps_what_it_was_raised_with_and_answers_it() -> None:
    error = ProblemError("too_many_sockets", "three at most", {"Retry-After": "1"}, {"limit": 3})
    assert str(error) == "too_many_sockets"
    assert (error.code, error.detail, error.status) == ("too_many_sockets", "three at most", 429)
    assert error.headers == {"Retry-After": "1"} and error.extra == {"limit": 3}
    response = response_for(error)
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert isinstance(response.body, bytes)
    assert json.loads(response.body)["limit"] == 3
    assert json.loads(response.body)["detail"] == "three at most"


def test_an_error_without_headers_or_extra_has_empty_ones_of_its_own() -> None:
    first, second = ProblemError("bad_request", "a"), ProblemError("bad_request", "b")
    assert first.headers == {} and first.extra == {}
    first.headers["X"] = "1"
    assert second.headers == {}, "each error has its own headers"
