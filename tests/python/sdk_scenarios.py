"""The official Anthropic Python SDK against the gateway, as a user would set it up: only the
base URL and the key change. Run by tests/api/messages.rs, one scenario per call:

    python sdk_scenarios.py create|stream|tools|errors

GATEWAY_URL and GATEWAY_KEY say where and who. Each scenario asserts with the SDK's own objects
and prints one JSON object on its last line for the Rust test to check further.
"""

import json
import os
import sys

import anthropic

MODEL = "claude-sonnet-4-6"


def client(**kwargs):
    options = {
        "base_url": os.environ["GATEWAY_URL"],
        "api_key": os.environ["GATEWAY_KEY"],
    }
    options.update(kwargs)
    return anthropic.Anthropic(**options)


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


def create():
    """The same request twice: the second comes from the cache."""
    c = client()
    kwargs = dict(
        model=MODEL,
        max_tokens=256,
        system=[
            {
                "type": "text",
                "text": "You are a concise assistant.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        messages=[{"role": "user", "content": "Why cache LLM answers?"}],
        stop_sequences=["\n\nHuman:"],
        metadata={"user_id": "sdk-test"},
    )
    results = []
    for _ in range(2):
        raw = c.messages.with_raw_response.create(**kwargs)
        message = raw.parse()
        assert isinstance(message, anthropic.types.Message), type(message)
        assert message.role == "assistant" and message.stop_reason == "end_turn"
        results.append(
            {
                "x_cache": raw.headers.get("x-cache"),
                "cost": raw.headers.get("x-gateway-cost-usd"),
                "id": message.id,
                "text": text_of(message),
                "output_tokens": message.usage.output_tokens,
            }
        )
    assert results[0]["text"] == results[1]["text"]
    return {"calls": results}


def stream():
    """A streamed miss, then hits: streamed through the helper, as raw events, and whole."""
    c = client()
    kwargs = dict(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "Stream me a short answer."}],
    )
    runs = []
    for _ in range(2):
        with c.messages.stream(**kwargs) as s:
            pieces = list(s.text_stream)
            final = s.get_final_message()
            runs.append(
                {
                    "x_cache": s.response.headers.get("x-cache"),
                    "cost": s.response.headers.get("x-gateway-cost-usd"),
                    "pieces": len(pieces),
                    "text": text_of(final),
                    "joined": "".join(pieces),
                    "stop_reason": final.stop_reason,
                    "input_tokens": final.usage.input_tokens,
                    "output_tokens": final.usage.output_tokens,
                }
            )
    events = [event.type for event in c.messages.create(stream=True, **kwargs)]
    whole = c.messages.with_raw_response.create(**kwargs)
    for run in runs:
        assert run["text"] == run["joined"], run
    assert runs[0]["text"] == runs[1]["text"] == text_of(whole.parse())
    return {
        "runs": runs,
        "events": events,
        "whole_x_cache": whole.headers.get("x-cache"),
    }


def tools():
    """A tool call, whole and streamed; the second and third come from the cache."""
    c = client()
    kwargs = dict(
        model=MODEL,
        max_tokens=512,
        tools=[
            {
                "name": "get_weather",
                "description": "The current weather in a city.",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ],
        tool_choice={"type": "auto"},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    calls = []
    raw = c.messages.with_raw_response.create(**kwargs)
    calls.append((raw.headers.get("x-cache"), raw.parse()))
    raw = c.messages.with_raw_response.create(**kwargs)
    calls.append((raw.headers.get("x-cache"), raw.parse()))
    with c.messages.stream(**kwargs) as s:
        calls.append((s.response.headers.get("x-cache"), s.get_final_message()))
    out = []
    for x_cache, message in calls:
        assert message.stop_reason == "tool_use", message
        tool = next(b for b in message.content if b.type == "tool_use")
        out.append(
            {"x_cache": x_cache, "name": tool.name, "input": tool.input, "id": tool.id}
        )
    return {"calls": out}


def errors():
    """Errors arrive as the SDK's own exception classes."""
    out = {}
    request = dict(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "Rate limit me."}],
    )
    try:
        client(max_retries=0).messages.create(**request)
        raise AssertionError("no RateLimitError")
    except anthropic.RateLimitError as e:
        out["rate_limit"] = {
            "status": e.status_code,
            "type": e.body["error"]["type"],
            "retry_after": e.response.headers.get("retry-after"),
        }
    try:
        client(api_key="not-a-gateway-key", max_retries=0).messages.create(**request)
        raise AssertionError("no AuthenticationError")
    except anthropic.AuthenticationError as e:
        out["auth"] = {"status": e.status_code, "type": e.body["error"]["type"]}
    try:
        client(max_retries=0).messages.create(**{**request, "max_tokens": 0})
        raise AssertionError("no BadRequestError")
    except anthropic.BadRequestError as e:
        out["bad_request"] = {"status": e.status_code, "type": e.body["error"]["type"]}
    return out


if __name__ == "__main__":
    scenario = {"create": create, "stream": stream, "tools": tools, "errors": errors}
    result = scenario[sys.argv[1]]()
    print(json.dumps(result))
