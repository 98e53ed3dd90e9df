"""A fast fake model provider: the only fake llmur's tests, benchmark and newcomers use.

It speaks enough of the OpenAI, Anthropic and Ollama HTTP APIs for llmur (or any gateway) to
proxy to it, answers deterministically, and misbehaves on request: the upstream model name picks
a behaviour (see fakeprovider.behaviour). Run it with `llmur-fake-provider --port 9100`.
"""
