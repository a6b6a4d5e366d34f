"""twin.toml: documented defaults, strict validation that reports every problem at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from twin.config import default_config, load_config, load_config_text, parse_bbox, render_config
from twin.errors import ConfigError


def test_rendered_file_holds_the_defaults_plus_the_city() -> None:
    text = render_config("示范市", name_en="Demo City", language="en",
                         bbox=(121.3, 31.1, 121.65, 31.4))
    config = load_config_text(text)
    expected = default_config()
    expected["city"].update(name="示范市", name_en="Demo City", language="en",
                            bbox=[121.3, 31.1, 121.65, 31.4])
    assert dict(config.data) == expected
    assert config.bbox == (121.3, 31.1, 121.65, 31.4)
    assert (config.base_resolution, config.rollups) == (10, (9, 8, 7))


def test_defaults_follow_design() -> None:
    cfg = default_config()
    assert cfg["zones"]["lockdown_clear_days"] == 7
    assert cfg["zones"]["control_clear_days"] == 7
    assert cfg["needs"]["water"]["per_capita_daily"] == 15.0
    assert "Sphere" in cfg["needs"]["water"]["basis"]
    assert cfg["alerts"]["bed_occupancy"] == 0.85
    assert cfg["privacy"] == {"viewer_resolution": 8, "suppress_below": 10}
    # every documented need says where its number comes from
    assert all(need["basis"] for need in cfg["needs"].values())


def test_every_default_is_documented_by_a_comment() -> None:
    text = (Path(__file__).parents[1] / "twin" / "defaults.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[") and not line.startswith("[needs."):
            block = lines[i + 1:i + 3]
            assert any(b.startswith("#") for b in block) or line in (
                "[risk]", "[alerts]"), f"section {line} has no explanation"


def test_all_problems_are_reported_at_once() -> None:
    text = (render_config("示范市")
            .replace("base_resolution = 10", "base_resolution = 'ten'")
            .replace("suppress_below = 10", "suppres_below = 5")
            .replace("[supply]", "[suply]"))
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="ws/twin.toml")
    message = str(info.value)
    assert message.startswith("ws/twin.toml has 3 problems")
    assert "'grid.base_resolution' must be a whole number, got 'ten'" in message
    assert "unknown key 'privacy.suppres_below'; did you mean 'privacy.suppress_below'?" in message
    assert "unknown key 'suply'; did you mean 'supply'?" in message


def test_semantic_problems_are_reported_together() -> None:
    text = (render_config("示范市")
            .replace('language = "zh"', 'language = "fr"')
            .replace("rollups = [9, 8, 7]", "rollups = [11, 8]")
            .replace("high_per_10k = 20.0", "high_per_10k = 1.5"))
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    message = str(info.value)
    assert "3 problems" in message
    assert "'city.language' is 'fr'" in message
    assert "'grid.rollups' is [11, 8]" in message
    assert "0 < medium_per_10k < high_per_10k" in message


def test_the_first_release_risk_keys_are_read_and_ignored() -> None:
    """A workspace made by the first release keeps opening: its score weights, prior and
    thresholds in [0, 1] gave way to the forecast's thresholds per 10k."""
    old = ("[risk]\nwindow_days = 7\nprior_residents = 2000\n[risk.weights]\nincidence = 0.5\n"
           "growth = 0.2\n[risk.grades]\nhigh = 0.6\nmedium = 0.3\n")
    text = render_config("示范市")
    start, end = text.index("[risk]"), text.index("[zones]")
    config = load_config_text(text[:start] + old + text[end:])
    assert config["risk"]["grades"] == {"high_per_10k": 20.0, "medium_per_10k": 2.0,
                                        "high_min_expected": 1.0, "medium_min_expected": 0.25}
    assert "weights" not in config["risk"] and "prior_residents" not in config["risk"]


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "twin.toml"
    path.write_text(render_config("示范市") + "\n[grid\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"twin.toml is not valid TOML: .*line \d+"):
        load_config(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "twin.toml"
    path.write_bytes('[city]\nname = "示范市"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_needs_entries_are_checked() -> None:
    text = render_config("示范市") + (
        '\n[needs.diapers]\nunit = "piece"\nper_capita_daily = 0.1\n'
        'tiers = ["lockdown", "quarantine"]\npopulation = "infants"\nbasis = ""\n'
        '\n[needs.soap]\nunit = "bar"\n')
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    message = str(info.value)
    assert "'needs.diapers.tiers' has ['quarantine']" in message
    assert "'needs.diapers.population' is 'infants'" in message
    assert "'needs.soap' lacks 'per_capita_daily'" in message


def test_user_defined_need_is_accepted() -> None:
    text = render_config("示范市") + (
        '\n[needs.diapers]\nunit = "piece"\nper_capita_daily = 0.1\n'
        'tiers = ["lockdown"]\npopulation = "residents"\nbasis = "local rule"\n')
    assert load_config_text(text)["needs"]["diapers"]["unit"] == "piece"


@pytest.mark.parametrize(("text", "fragment"), [
    ("1,2,3", "it has 3 numbers"),
    ("a,b,c,d", "is not four numbers"),
    ("121.6,31.1,121.3,31.4", "min_lon < max_lon"),
    ("31.1,121.3,31.4,121.6", "latitude and longitude are swapped"),
    ("121.3,31.1,inf,31.4", "finite"),
])
def test_bad_bbox(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_bbox(text)


def test_bbox_in_file_is_checked() -> None:
    text = render_config("示范市", bbox=(121.3, 31.1, 121.65, 31.4)).replace(
        "bbox = [121.3,", "bbox = [122.3,")
    assert "bbox = [122.3," in text
    with pytest.raises(ConfigError, match="min_lon < max_lon"):
        load_config_text(text)


def test_empty_name_refused() -> None:
    with pytest.raises(ConfigError, match="city name is empty"):
        render_config("  ")


def test_name_with_quotes_round_trips() -> None:
    name = 'He said "示范" \\ 市'
    assert tomllib.loads(render_config(name))["city"]["name"] == name


def test_bbox_is_kept_as_given() -> None:
    """No rounding: 121.43641234567 stays 121.43641234567 (issue 15: a boundary drawn exactly
    on the box was reported partly outside after six-decimal rounding)."""
    bbox = (121.43641234567, 31.1982000001, 121.50649999999, 31.26540000004)
    config = load_config_text(render_config("示范市", name_en="Demo", bbox=bbox))
    assert config.bbox == bbox
