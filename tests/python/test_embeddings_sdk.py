"""The official `openai` SDK's `embeddings.create` against ClawGate's `/v1/embeddings`: an
OpenAI-compatible provider gets the request with its `embedding_model`; a `google-genai`
provider gets `batchEmbedContents`, answered back in OpenAI's shape."""

import pytest
from openai import OpenAI

from conftest import Gate, Mock, TRANSLATED_TIMEOUTS, embedding_of
from native_mocks import NativeMock


@pytest.fixture
def embedders(tmp_path):
    gem = NativeMock("gemini", "gem")
    oai = Mock("oai")
    config = (
        "server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n"
        f"  gem:\n    backend: google-genai\n    base_url: \"{gem.base_url}\"\n    api_key: gemini-test-key\n"
        f"    model: gemini-2.5-flash\n    embedding_model: text-embedding-004\n    timeout: {TRANSLATED_TIMEOUTS}\n"
        f"  oai:\n    backend: openai-compat\n    base_url: \"{oai.base_url}\"\n    api_key: sk-test-oai\n"
        f"    model: upstream-oai\n    embedding_model: embed-small\n    timeout: {TRANSLATED_TIMEOUTS}\n"
        "fallback_chain: [oai, gem]\n"
    )
    gate = Gate(config, tmp_path)
    client = OpenAI(base_url=gate.url + "/v1", api_key="local", max_retries=0, timeout=20)
    yield client, gem, oai
    client.close()
    gate.stop()
    gem.stop()
    oai.stop()


@pytest.mark.parametrize("given", ["hello", ["hello", "a longer text"]])
def test_an_openai_backend_embeds_a_string_and_a_list(embedders, given):
    client, gem, oai = embedders
    r = client.embeddings.create(model="auto", input=given)
    texts = given if isinstance(given, list) else [given]
    assert [d.embedding for d in r.data] == [embedding_of(t) for t in texts]
    assert [d.index for d in r.data] == list(range(len(texts)))
    assert r.model == "embed-small"
    assert r.usage.prompt_tokens == 2 * len(texts)
    sent = oai.received[-1]
    assert sent["path"] == "/v1/embeddings"
    assert sent["body"]["model"] == "embed-small"
    assert sent["body"]["input"] == given
    assert gem.received == []


@pytest.mark.parametrize("given", ["hello", ["hello", "a longer text"]])
def test_a_gemini_backend_embeds_through_batch_embed_contents(embedders, given):
    client, gem, oai = embedders
    r = client.embeddings.create(model="gem", input=given, dimensions=2)
    texts = given if isinstance(given, list) else [given]
    # The SDK asks for base64 (little-endian f32s) unless told otherwise: f32 precision.
    assert [d.embedding for d in r.data] == [pytest.approx([round(len(t) / 100, 2), 0.5]) for t in texts]
    floats = client.embeddings.create(model="gem", input=given, encoding_format="float")
    assert [d.embedding for d in floats.data] == [[round(len(t) / 100, 2), 0.5] for t in texts]
    assert r.object == "list" and r.model == "text-embedding-004"
    assert r.usage.prompt_tokens >= 1
    sent = gem.received[0]
    assert sent["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent["headers"]["x-goog-api-key"] == "gemini-test-key"
    assert [q["content"]["parts"][0]["text"] for q in sent["body"]["requests"]] == texts
    assert all(q["outputDimensionality"] == 2 and q["model"] == "models/text-embedding-004"
               for q in sent["body"]["requests"])
    assert oai.received == []
