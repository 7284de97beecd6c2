"""Several OpenAI-compatible endpoints behind one pool: tiny servers on loopback threads, no Ray."""

import pickle
import socket
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from chat_server import ChatHandler
from symdisc.llm import Request
from symdisc.llm.openai_http import OpenAIBackend
from symdisc.llm.pool import EndpointPool
from symdisc.errors import BackendError


def _server(delay_s: float = 0.0):
    """A chat-completions server that names itself in its reply and records its peak concurrency."""
    state = {"hits": 0, "now": 0, "peak": 0}
    lock = threading.Lock()

    class Handler(ChatHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            self.read_json()
            with lock:
                state["hits"] += 1
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(delay_s)
            with lock:
                state["now"] -= 1
            self.send_chat(f"served by {self.server.server_address[1]}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1", state


@pytest.fixture
def servers():
    started = []

    def start(delay_s: float = 0.0):
        httpd, url, state = _server(delay_s)
        started.append(httpd)
        return url, state

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def _down_url() -> str:
    """An address on which nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


REQUEST = Request(system="s", user="u")


def _pool(urls, **kw):
    return EndpointPool([OpenAIBackend(u, timeout_s=5) for u in urls], **kw)


def test_requests_go_round_robin(servers):
    (a, sa), (b, sb) = servers(), servers()
    pool = _pool([a, b])
    texts = [pool.generate(REQUEST).text for _ in range(4)]
    port_a, port_b = a.split(":")[2].split("/")[0], b.split(":")[2].split("/")[0]
    assert texts == [f"served by {p}" for p in (port_a, port_b, port_a, port_b)]
    assert sa["hits"] == sb["hits"] == 2
    assert pool.slots == 2 and "," in pool.info["api_base"]


def test_concurrency_limit_per_endpoint(servers):
    url, state = servers(delay_s=0.3)
    pool = _pool([url], limit=2)
    threads = [threading.Thread(target=pool.generate, args=(REQUEST,)) for _ in range(5)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["hits"] == 5 and state["peak"] == 2
    assert time.perf_counter() - t0 >= 0.85  # 5 requests, 2 at a time, 0.3 s each: three rounds


def test_one_endpoint_down_the_others_serve(servers):
    up, state = servers()
    down = _down_url()
    said = []
    pool = _pool([down, up], say=said.append)
    for _ in range(4):
        assert pool.generate(REQUEST).text.startswith("served by")
    assert state["hits"] == 4
    # one clear line about the dead endpoint, then it sits out its cooldown instead of failing every request
    assert len(said) == 1 and down.rsplit("/", 1)[0] in said[0] and "going on with the other 1" in said[0]
    assert "\n" not in said[0]


def test_all_endpoints_down_is_a_backend_error():
    first, second = _down_url(), _down_url()
    with pytest.raises(BackendError, match="every endpoint failed") as err:
        _pool([first, second], say=lambda m: None).generate(REQUEST)
    assert "\n" not in str(err.value)
    assert first.split("//")[1].split("/")[0] in str(err.value) and second.split("//")[1].split("/")[0] in str(err.value)


def test_pool_pickles_for_proposer_actors(servers):
    url, state = servers()
    pool = pickle.loads(pickle.dumps(_pool([url], limit=3, say=print)))
    assert pool.generate(REQUEST).text.startswith("served by") and pool.slots == 3 and state["hits"] == 1


def test_open_backend_pools_several_api_bases():
    from symdisc.llm import open_backend
    from symdisc.config import EvolveConfig

    config = EvolveConfig(api_base="http://a:1/v1", api_bases=["http://a:1/v1", "http://b:1/v1"], api_concurrency=2)
    pool, _ = open_backend(config)
    assert isinstance(pool, EndpointPool) and pool.slots == 4
    assert pool.info["api_base"] == "http://a:1/v1, http://b:1/v1"
    single, _ = open_backend(EvolveConfig(api_base="http://a:1/v1"))  # a run saved before api_bases
    assert isinstance(single, OpenAIBackend)
