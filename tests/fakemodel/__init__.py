"""A local stand-in for the model providers, so the real agent CLIs can run in the tests.

Only the model's reply is fake: the CLIs are the real ones from npm and PyPI, and
they talk to this server over HTTP exactly as they would to the provider. What the
server answers is steered by directives in the prompt (see `script.py`).
"""
