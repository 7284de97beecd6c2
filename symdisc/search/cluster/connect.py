"""Connecting to a Ray cluster: start a local one, join an address, check it is reachable.

Ray is imported only here and only when a cluster run starts: the local path never loads it.
"""

from __future__ import annotations

import logging
import socket
from typing import Optional

from symdisc.errors import ConfigError, UsageError

def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--cluster needs Ray: pip install 'symdisc[ray]' (or use --cluster local)") from None
    return ray


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0].strip() if text else ''}"


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable head for minutes; a plain TCP connect says so in seconds."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--cluster must be local, auto or a Ray address HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
                          f"(is `ray start --head` running there?)") from None


def connect(address: str) -> bool:
    """Join a Ray cluster (``auto``: the one running here, else a new one on this machine).
    Returns whether this call connected (and so should disconnect at the end)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.WARNING, log_to_driver=True)
    try:
        if address == "auto":
            running = _running_here()
            if running:
                _use_token_if_any()
                ray.init(address=running, **quiet)
            else:
                ray.init(address="local", include_dashboard=False, **quiet)
        else:
            _reachable(address)
            _use_token_if_any()
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {_one_line(exc)} (a cluster with token "
                          f"authentication needs its token here: ~/.ray/auth_token or RAY_AUTH_TOKEN)") from None
    return True


def _running_here() -> Optional[str]:
    """The address of the Ray cluster `ray start` left running here (or RAY_ADDRESS), if it answers.
    A head that was killed leaves its address behind, and Ray would retry it for minutes."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        address = canonicalize_bootstrap_address(None)  # None: "nothing running", not an error
    except Exception:  # a Ray whose internals differ: let ray.init look for itself
        return "auto"
    if not address:
        return None
    try:
        _reachable(address, timeout_s=2.0)
    except ConfigError:
        return None
    return address


def _use_token_if_any() -> None:
    """Authenticate like ``ray start --address`` does: with the token found here, if any (recent Ray
    heads require one by default; ``ray.init`` with an explicit address does not look for it)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available)
    except ImportError:
        return  # a Ray without token authentication
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)

