"""Reaching the servers: the HTTP policy (timeouts, retries), the cost ledger, and the SGLang backend."""

from sglang_plugin.transport.http import EndpointError, HttpClient, TransportConfig
from sglang_plugin.transport.ledger import CostLedger

__all__ = ["CostLedger", "EndpointError", "HttpClient", "TransportConfig"]
