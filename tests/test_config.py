"""Strict configuration: unknown keys and bad values are named; JSON round trip."""

import json

import pytest

from seq2seq.config import CONFIG_VERSION, Config, ConfigError, ModelConfig


def test_round_trip_through_model_dir(tmp_path):
    config = Config.from_dict({"model": {"cell": "gru", "units": 32, "bidirectional": True}})
    config.save(str(tmp_path))
    loaded = Config.load(str(tmp_path))
    assert loaded == config
    assert loaded.model.decoder_units == 64


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"model": {"celll": "gru"}}, "model.celll"),
        ({"nope": 1}, "'nope'"),
        ({"model": {"cell": "transformer"}}, "model.cell='transformer'"),
        ({"model": {"units": -3}}, "model.units=-3"),
        ({"model": {"units": "many"}}, "model.units='many'"),
        ({"model": {"units": 2.5}}, "model.units=2.5"),
        ({"model": {"bidirectional": "yes"}}, "model.bidirectional='yes'"),
        ({"model": {"dropout": 1.5}}, "model.dropout=1.5"),
        ({"model": {"source_input": "features"}}, "model.num_features"),
        ({"data": {"source_tokenizer": "bpe"}}, "data.source_tokenizer='bpe'"),
        ({"train": {"epochs": 0}}, "train.epochs=0"),
        ({"train": 3}, "train"),
        ({"train": {"valid_fraction": 0.0}}, "train.valid_fraction=0.0"),
        ({"data": {"max_vocab_size": 3}}, "data.max_vocab_size=3"),
    ],
)
def test_bad_keys_and_values_are_named(data, needle):
    with pytest.raises(ConfigError) as error:
        Config.from_dict(data)
    assert needle in str(error.value)


def test_int_accepted_for_float_field():
    assert Config.from_dict({"train": {"learning_rate": 1}}).train.learning_rate == 1.0


def test_newer_config_version_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"version": CONFIG_VERSION + 1}))
    with pytest.raises(ConfigError, match="newer seq2seq"):
        Config.load(str(tmp_path))


def test_corrupt_and_missing_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Config.load(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.load(str(tmp_path))


def test_model_config_direct_validation():
    with pytest.raises(ConfigError, match="model.layers=0"):
        ModelConfig(layers=0)
