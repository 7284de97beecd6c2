"""A base for the tiny OpenAI-compatible chat servers the backend tests run on loopback."""

import json
from http.server import BaseHTTPRequestHandler


class ChatHandler(BaseHTTPRequestHandler):
    def read_json(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_chat(self, content: str, prompt_tokens: int = 1, completion_tokens: int = 1) -> None:
        """Answer with one chat completion, the shape llama-server, Ollama and vLLM return."""
        reply = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep the test output clean
        pass
