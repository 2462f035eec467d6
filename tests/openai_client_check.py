#!/usr/bin/env python3
"""Checks that the fake OpenAI server of tests/fake_openai speaks the real protocol: the official
`openai` Python client must parse its completions (typed, with usage) and its errors.

Run through the Rust test that starts the fake and scripts it:
    pip install openai
    cargo test --test llm_interpreter -- --ignored --nocapture the_official_python_client
The script expects, in order: a query answer, a 429 rate-limit error, a clarification answer.
"""
import json
import sys

import openai
from openai import OpenAI

SCHEMA = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ["kind", "sql", "summary", "explanation", "clarification"]},
    "required": ["kind", "sql", "summary", "explanation", "clarification"],
    "additionalProperties": False,
}


def main(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="sk-test-key", max_retries=0)
    request = dict(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "revenue by region"},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "threadql_answer", "schema": SCHEMA, "strict": True},
        },
    )

    # 1. A completion parses into the typed model, usage included.
    completion = client.chat.completions.create(**request)
    assert completion.object == "chat.completion", completion
    assert completion.id.startswith("chatcmpl-"), completion.id
    assert isinstance(completion.created, int)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    answer = json.loads(choice.message.content)
    assert answer["kind"] == "query" and answer["sql"].startswith("SELECT"), answer
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0
    # No field the client does not model (it keeps extras in model_extra).
    assert not completion.model_extra, completion.model_extra
    assert not choice.message.model_extra, choice.message.model_extra
    print(f"completion: {completion.id} model={completion.model} usage={completion.usage.prompt_tokens}/"
          f"{completion.usage.completion_tokens}")

    # 2. A 429 is a typed RateLimitError with OpenAI's error body.
    try:
        client.chat.completions.create(**request)
        raise AssertionError("expected a RateLimitError")
    except openai.RateLimitError as error:
        assert error.status_code == 429
        assert error.code == "rate_limit_exceeded", error.code
        assert error.type == "requests", error.type
        assert error.response.headers.get("retry-after-ms") == "20"
        print(f"429: {error.code}: {error.message[:60]}")

    # 3. The raw response (what async-openai reads) and a clarification.
    raw = client.chat.completions.with_raw_response.create(**request)
    assert raw.headers.get("content-type", "").startswith("application/json"), raw.headers
    parsed = raw.parse()
    clarification = json.loads(parsed.choices[0].message.content)
    assert clarification["kind"] == "clarification" and clarification["clarification"], clarification
    print(f"clarification: {clarification['clarification']}")
    print(f"OK (openai {openai.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
