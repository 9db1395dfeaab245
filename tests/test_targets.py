"""Target profiles: every target and TensorRT release resolves to the facts of platforms.md, bad input is refused."""

from dataclasses import replace

import pytest
from helpers import one_line_error

from rftrt.targets.batch import BatchProfile, format_batch, parse_batch
from rftrt.targets.profiles import _check_dla, format_target, format_targets_table, list_targets, load_target
from rftrt.targets.tensorrt import version_tag

# docs/platforms.md §1 and §3: target → release → (platform, dialect, opset ceiling, DLA usable)
EXPECTED = {
    "orin": {
        "8.6": ("DRIVE OS 6.0.x", "weak", 17, True),
        "10.10": ("DRIVE OS 7.0.x", "weak", 22, True),
    },
    "jetson-orin": {
        "8.6": ("JetPack 6.0", "weak", 17, True),
        "10.3": ("JetPack 6.1/6.2", "weak", 20, True),
        "11.4": ("JetPack 7.2.2+", "strong", 25, True),
    },
    "l40": {
        "11.4": ("x86_64 Linux", "strong", 25, False),
        "10.13": ("x86_64 Linux", "weak", 24, False),
    },
}
DEFAULTS = {"orin": "8.6", "jetson-orin": "10.3", "l40": "11.4"}
HARDWARE = {"orin": ("aarch64", "8.7", 2), "jetson-orin": ("aarch64", "8.7", 2), "l40": ("x86_64", "8.9", 0)}


def test_the_three_targets_ship():
    assert list_targets() == ["jetson-orin", "l40", "orin"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_default_release_and_profile(name):
    target = load_target(name)
    arch, sm, dla_cores = HARDWARE[name]
    assert (target.arch, target.compute_capability, target.dla_cores) == (arch, sm, dla_cores)
    assert target.release.version == DEFAULTS[name] and target.release.default
    assert target.releases[0] == target.release
    assert {r.version for r in target.releases} == set(EXPECTED[name])
    assert target.batch == BatchProfile(1, 8, 32)
    assert target.builder_optimization_level == 3
    assert target.workspace_mib >= 1024
    assert target.dla_core is None


@pytest.mark.parametrize(
    "name,version", [(name, version) for name, releases in EXPECTED.items() for version in releases]
)
def test_every_release_resolves(name, version):
    target = load_target(name, version)
    platform, dialect, opset, dla = EXPECTED[name][version]
    r = target.release
    assert (r.version, r.platform, r.dialect, r.opset_max, r.dla) == (version, platform, dialect, opset, dla)
    assert target.strongly_typed == (dialect == "strong") == version.startswith("11.")
    assert r.default == (version == DEFAULTS[name])


def test_a_full_version_picks_its_release():
    assert load_target("orin", "8.6.12").release.version == "8.6"
    assert load_target("orin", "10.10.10").release.version == "10.10"
    assert load_target("jetson-orin", "11.4.1").release.version == "11.4"


def test_the_version_asked_for_is_kept_and_the_release_matched_on_major_minor():
    drive = load_target("orin", "8.6.12")
    assert (drive.tensorrt_version, drive.release.version) == ("8.6.12", "8.6")
    assert load_target("orin").tensorrt_version == "8.6" and load_target("l40", "10.13").tensorrt_version == "10.13"
    assert load_target("orin", "8.6.12", dla_core=0).tensorrt_version == "8.6.12"
    assert "8.6.12 (DRIVE OS 6.0.x)" in format_target(drive)
    # a version no build.json or cache header could carry is refused when the target is resolved
    assert "MAJOR.MINOR[.PATCH]" in one_line_error(load_target, "jetson-orin", "10.3.0.30")
    assert "not numeric" in one_line_error(load_target, "orin", "8.6.x")


def test_version_tags_as_trtexec_prints_them():
    assert version_tag("8.6") == 8600
    assert version_tag("8.6.12") == 8612
    assert version_tag("10.3") == 100300
    assert version_tag("10.10") == 101000
    assert version_tag("11.4") == 110400
    assert load_target("jetson-orin").release.version_tag == 100300
    assert "not numeric" in one_line_error(version_tag, "8.6.x")
    assert "MAJOR.MINOR" in one_line_error(version_tag, "11")


# --- errors ------------------------------------------------------------------------------------


def test_unknown_target_lists_the_valid_ones():
    message = one_line_error(load_target, "xavier")
    assert "'xavier'" in message and "jetson-orin, l40, orin" in message


def test_unoffered_release_lists_the_offered_ones():
    message = one_line_error(load_target, "orin", "11.4")
    assert "orin offers TensorRT 8.6 (DRIVE OS 6.0.x), 10.10 (DRIVE OS 7.0.x)" in message
    assert "11.4" in message
    # 8.6 is not a prefix of 8.60
    one_line_error(load_target, "orin", "8.60")


def test_dla_on_a_target_without_dla():
    assert one_line_error(load_target, "l40", dla_core=0) == "l40 has no DLA; DLA is on jetson-orin, orin"


@pytest.mark.parametrize("core", [2, 7])
def test_dla_core_out_of_range(core):
    message = one_line_error(load_target, "orin", dla_core=core)
    assert f"DLA core {core}" in message and "2 DLA cores" in message and "0, 1" in message


@pytest.mark.parametrize("core", [-1, True, 0.0])
def test_dla_core_must_be_a_non_negative_int(core):
    assert "non-negative integer" in one_line_error(load_target, "orin", dla_core=core)


def test_dla_refused_with_a_release_that_has_none():
    # No shipped release lacks DLA on a DLA target today; the check must still hold when one is added
    # (TensorRT 11.0–11.3 had no DLA anywhere).
    profile = load_target("jetson-orin")
    no_dla = replace(profile.releases[2], dla=False)
    profile = replace(profile, releases=(profile.releases[0], profile.releases[1], no_dla))
    message = one_line_error(_check_dla, profile, no_dla, 0)
    assert "not available with TensorRT 11.4 (JetPack 7.2.2+) on jetson-orin" in message
    assert "10.3 (JetPack 6.1/6.2), 8.6 (JetPack 6.0)" in message


def test_dla_with_strongly_typed_tensorrt_11_on_jetson_agx_orin_is_allowed():
    # TensorRT 11.4.1 release notes: DLA back on Jetson AGX Orin under JetPack 7.2.2+ (platforms.md §1).
    target = load_target("jetson-orin", "11.4", dla_core=1)
    assert target.strongly_typed and target.dla_core == 1


# --- DLA makes the batch static -----------------------------------------------------------------


def test_dla_fixes_the_batch_at_the_opt_size_and_says_so():
    target = load_target("orin", dla_core=0)
    assert target.batch == BatchProfile(8, 8, 8) and target.batch.static
    assert "DLA needs static shapes: batch fixed at 8" in target.notes


def test_dla_uses_the_opt_size_of_a_given_dynamic_batch():
    target = load_target("jetson-orin", dla_core=0, batch=BatchProfile(2, 16, 64))
    assert target.batch == BatchProfile(16, 16, 16)
    assert "DLA needs static shapes: batch fixed at 16" in target.notes


def test_dla_keeps_a_static_batch_without_a_note():
    target = load_target("orin", dla_core=1, batch=BatchProfile(4, 4, 4))
    assert target.batch == BatchProfile(4, 4, 4)
    assert not any("fixed at" in n for n in target.notes)


def test_without_dla_the_batch_stays_as_given():
    assert load_target("l40", batch=BatchProfile(1, 64, 256)).batch == BatchProfile(1, 64, 256)
    assert load_target("orin").notes == ()


def test_a_bad_batch_profile_is_refused():
    assert "at least 1" in one_line_error(load_target, "orin", batch=BatchProfile(0, 8, 32))
    assert "min <= opt <= max" in one_line_error(load_target, "orin", batch=BatchProfile(8, 4, 32))


# --- batch syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [("1:8:32", BatchProfile(1, 8, 32)), ("8", BatchProfile(8, 8, 8)), (" 4 ", BatchProfile(4, 4, 4)), ("2:2:2", BatchProfile(2, 2, 2))],
)
def test_parse_batch(text, expected):
    assert parse_batch(text) == expected
    assert parse_batch(format_batch(expected)) == expected


@pytest.mark.parametrize(
    "text,words",
    [
        ("1:8", "MIN:OPT:MAX or N"),
        ("1:2:3:4", "MIN:OPT:MAX or N"),
        ("a:b:c", "not an integer"),
        ("", "not an integer"),
        ("1.5", "not an integer"),
        ("0:8:32", "at least 1"),
        ("-2", "at least 1"),
        ("0", "at least 1"),
        ("8:4:32", "min <= opt <= max"),
        ("1:64:32", "min <= opt <= max"),
    ],
)
def test_parse_batch_errors(text, words):
    assert words in one_line_error(parse_batch, text)


# --- printing -----------------------------------------------------------------------------------


def test_print_config_shows_the_resolved_settings():
    text = format_target(load_target("orin"))
    for expected in ("orin", "DRIVE AGX Orin", "aarch64", "SM 8.7", "8.6 (DRIVE OS 6.0.x)", "weakly typed",
                     "up to 17", "1:8:32", "4096 MiB", "level 3", "off (2 cores available)"):
        assert expected in text, expected


def test_print_config_with_dla_and_strong_typing():
    text = format_target(load_target("jetson-orin", "11.4", dla_core=0))
    assert "strongly typed" in text and "up to 25" in text
    assert "core 0 of 2" in text and "8 (static)" in text
    assert "DLA needs static shapes: batch fixed at 8" in text
    assert "none on this target" in format_target(load_target("l40"))


def test_targets_table_lists_every_release_and_marks_the_default():
    table = format_targets_table()
    lines = table.splitlines()
    for name, releases in EXPECTED.items():
        row = next(line for line in lines if line.startswith(name + " "))
        assert f"{DEFAULTS[name]} *" in row
        for version, (platform, dialect, opset, _) in releases.items():
            assert any(version in line and platform in line and dialect in line and str(opset) in line for line in lines)
    assert "2 cores" in next(line for line in lines if line.startswith("orin "))
    assert next(line for line in lines if line.startswith("l40 ")).rstrip().endswith("no")
