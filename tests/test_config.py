from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import load_settings
from rag.errors import ConfigError

from .support.profiles import OFFLINE_PROFILE, PROJECT


class TestLoadSettings:
    def test_defaults_name_the_real_qwen3_models(self) -> None:
        settings = load_settings(environ={})
        assert settings.embedding.model == "Qwen/Qwen3-Embedding-0.6B"
        assert load_settings(PROJECT / "configs" / "default.yaml", environ={}) == settings

    def test_profile_from_file_and_from_rag_config(self) -> None:
        by_argument = load_settings(OFFLINE_PROFILE, environ={})
        by_environment = load_settings(environ={"RAG_CONFIG": str(OFFLINE_PROFILE)})
        assert by_argument.embedding.model == "sentence-transformers/all-MiniLM-L6-v2"
        assert by_argument == by_environment

    def test_environment_overrides_file_and_overrides_win(self, tmp_path: Path) -> None:
        environ = {"RAG_EMBEDDING__BATCH_SIZE": "7", "RAG_DATA_DIR": str(tmp_path), "RAG_CHROMA__URL": "http://x:1"}
        settings = load_settings(OFFLINE_PROFILE, environ=environ)
        assert settings.embedding.batch_size == 7
        assert settings.embedding.model == "sentence-transformers/all-MiniLM-L6-v2"  # from the file
        assert settings.data_dir == tmp_path
        assert settings.chroma.url == "http://x:1"
        assert load_settings(OFFLINE_PROFILE, environ=environ, collection="other").collection == "other"

    def test_overlap_zero_is_kept_not_replaced_by_default(self) -> None:
        settings = load_settings(environ={"RAG_CHUNKING__OVERLAP_TOKENS": "0"})
        assert settings.chunking.overlap_tokens == 0

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("embedding: [unclosed", "not valid YAML"),
            ("- a list", "mapping at the top level"),
            ("embeding:\n  model: x\n", "embeding"),
            ("chunking:\n  max_tokens: 100\n  overlap_tokens: 100\n", "overlap_tokens"),
        ],
    )
    def test_bad_files_fail_with_a_clear_error(self, tmp_path: Path, content: str, message: str) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(content)
        with pytest.raises(ConfigError, match=message):
            load_settings(path, environ={})

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not found"):
            load_settings(tmp_path / "nope.yaml", environ={})

    def test_bad_environment_value_names_the_key(self) -> None:
        with pytest.raises(ConfigError, match="batch_size"):
            load_settings(environ={"RAG_EMBEDDING__BATCH_SIZE": "many"})
