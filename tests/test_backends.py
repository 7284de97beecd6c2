"""Backends that need no model file: an OpenAI-compatible server on loopback, and the prompt."""

import threading
from http.server import HTTPServer

import pytest

from chat_server import ChatHandler
from symdisc.llm import Request
from symdisc.llm.openai_http import OpenAIBackend
from symdisc.errors import BackendError
from symdisc.search.prompting import UPDATE_GRAMMAR, grammar_enabled, load_prompts, user_message


class _Handler(ChatHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.read_json()
        _Handler.seen.append((self.path, body, self.headers.get("Authorization")))
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        self.send_chat("def update(grad, param, state, lr, t):\n    return lr * grad\n",
                       prompt_tokens=123, completion_tokens=17)


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_backend_sends_messages_and_reads_usage(server):
    backend = OpenAIBackend(server, model="qwen", api_key="k")
    out = backend.generate(Request(system="sys", user="usr", max_tokens=50, seed=4, grammar=UPDATE_GRAMMAR))
    assert out.text.startswith("def update(") and out.tokens_in == 123 and out.tokens_out == 17
    path, body, auth = _Handler.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "usr"}]
    assert body["seed"] == 4 and body["max_tokens"] == 50 and "root" in body["grammar"]


def test_openai_backend_errors_are_one_line(server):
    with pytest.raises(BackendError, match="HTTP 500"):
        OpenAIBackend(server, model="broken").generate(Request(system="s", user="u"))
    with pytest.raises(BackendError, match="cannot reach"):
        OpenAIBackend("http://127.0.0.1:9/v1", timeout_s=2).generate(Request(system="s", user="u"))


def test_grammar_default_follows_model_size():
    assert grammar_enabled(None, 0.5) and grammar_enabled(None, 1.5)
    assert not grammar_enabled(None, 4.0) and not grammar_enabled(None, None)
    assert grammar_enabled(True, 7.0) and not grammar_enabled(False, 0.5)


def test_prompt_texts_are_editable_files(tmp_path, monkeypatch):
    from symdisc.resources import prompts_dir

    for f in prompts_dir().glob("*.md"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "whiteboard.md").write_text("MY OWN WHITEBOARD\n")
    monkeypatch.setenv("SYMDISC_PROMPTS", str(tmp_path))
    texts = load_prompts("buffers")
    system = texts.system_message()
    assert "MY OWN WHITEBOARD" in system and "MEMORY RULE (buffers)" in system and "$memory_rules" not in system
    user = user_message(texts, [{"fitness": 0.7, "code": "def update(grad, param, state, lr, t):\n    return lr * grad\n",
                                 "name": "sgd"}], [])
    assert "# score 0.7000 [proxy] (sgd)" in user and "(none)" in user
