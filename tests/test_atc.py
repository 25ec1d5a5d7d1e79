"""graphkit.ascend.settings: static ATC rules (docs/ascend-toolchain.md §1.7, §2) and command emission."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.ascend import (
    ANY_GROUP,
    KNOWN_SOCS,
    AtcSettings,
    atc_command,
    atc_script,
    check_warnings,
    fusion_switch_json,
    input_shape_arg,
    merge_pass_hints,
    onnx_to_ascend_type,
    parse_fusion_switch,
    resolve_input_format,
    settings_from_mapping,
    validate_inputs,
)
from graphkit.errors import AtcConfigError, RecipeError

W = "recipes/x.yaml: atc"

# The hand-written lines graphkit replaces, as the seed guides print them.
ECAPA_GUIDE = (
    "atc --framework=5 --model=ecapa_tdnn_sim.onnx --output=om/ecapa_tdnn_bs4 --input_format=ND "
    '--input_shape="mel:4,80,200" --log=debug --fusion_switch_file=fusion_switch.cfg '
    "--soc_version=Ascend710>after.log "
)
AASIST_GUIDE = """atc --model=aasist_bs1.onnx \\
       --output=aasist_bs1 \\
       --input_shape="input:1,64600" \\
       --input_format=ND \\
       --log=error \\
       --framework=5 \\
       --soc_version=Ascend310P3 \\
       --optypelist_for_implmode="Sigmoid" \\
       --op_select_implmode=high_performance"""


def flags(command: str) -> dict[str, str]:
    """{flag: value} of an atc line, parsed the way a shell would."""
    words = shlex.split(command)
    assert words[0] == "atc"
    out = {}
    for word in words[1:]:
        assert word.startswith("--") and "=" in word, word
        key, _, value = word[2:].partition("=")
        assert key not in out, f"--{key} given twice"
        out[key] = value
    return out


def guide_flags(text: str) -> dict[str, str]:
    """flags() of a guide's line: continuation backslashes and the log redirection dropped."""
    return flags(text.replace("\\\n", " ").replace(">after.log", ""))


def S(**data) -> AtcSettings:  # noqa: N802 - reads like a constructor
    return settings_from_mapping(data, W)


def fails(match: str, **data) -> None:
    with pytest.raises(AtcConfigError, match=match):
        S(**data)


# --- the two guides ------------------------------------------------------------------------------


def test_ecapa_guide_line_reproduced():
    s = S(log="debug", fusion_switches={"UBFusion": {"TbeEltwiseFusionPass": "off"}})
    cmd = atc_command(
        s,
        model="ecapa_tdnn_sim.onnx",
        output="om/ecapa_tdnn_bs4",
        shapes={"mel": [4, 80, 200]},
        fusion_switch_file="fusion_switch.cfg",
    )
    want = guide_flags(ECAPA_GUIDE) | {"soc_version": "Ascend310P3"}  # the guide's Ascend710 renamed
    assert flags(cmd) == want
    assert '--input_shape="mel:4,80,200"' in cmd


def test_ecapa_guide_line_exact_with_legacy_soc():
    s = S(
        log="debug",
        soc_version="Ascend710",
        cann_version="5.0.2",
        fusion_switches={"UBFusion": {"TbeEltwiseFusionPass": "off"}},
    )
    cmd = atc_command(
        s,
        model="ecapa_tdnn_sim.onnx",
        output="om/ecapa_tdnn_bs4",
        shapes={"mel": [4, 80, 200]},
        fusion_switch_file="fusion_switch.cfg",
    )
    assert flags(cmd) == guide_flags(ECAPA_GUIDE)


def test_aasist_guide_line_reproduced():
    s = S(op_select_implmode="high_performance", optypelist_for_implmode=["Sigmoid"])
    cmd = atc_command(
        s, model="aasist_bs1.onnx", output="aasist_bs1", shapes={"input": [1, 64600]}, fusion_switch_file=None
    )
    assert flags(cmd) == guide_flags(AASIST_GUIDE)
    assert '--optypelist_for_implmode="Sigmoid"' in cmd
    assert check_warnings(s) == []


def test_aasist_guide_line_from_the_set_implmode_hint():
    hint = {
        "op_select_implmode": "high_performance",
        "optypelist_for_implmode": [onnx_to_ascend_type("Sigmoid")],
    }
    s = merge_pass_hints(S(), [hint, dict(hint)], W)
    cmd = atc_command(
        s, model="aasist_bs1.onnx", output="aasist_bs1", shapes={"input": [1, 64600]}, fusion_switch_file=None
    )
    assert flags(cmd) == guide_flags(AASIST_GUIDE)


def test_guide_constants_match_the_seed_texts(shared):
    ecapa = (shared / "seeds" / "ecapa-tdnn-ascend-guide.md").read_text(encoding="utf-8")
    aasist = (shared / "seeds" / "aasist-l-ascend-guide.md").read_text(encoding="utf-8")
    assert ECAPA_GUIDE.strip() in ecapa
    assert AASIST_GUIDE in aasist


# --- keys and types ------------------------------------------------------------------------------


def test_defaults_are_valid_and_quiet():
    assert S() == AtcSettings()
    assert check_warnings(AtcSettings()) == []
    assert issubclass(AtcConfigError, RecipeError)


def test_unknown_key_names_the_path_and_suggests():
    fails(r"recipes/x\.yaml: atc\.soc_verison: .*did you mean 'soc_version'", soc_verison="x")
    fails(r"atc\.dynamic_dims: .*one static model per batch size", dynamic_dims="1;2")
    fails(
        r"atc\.keep_dtype: .*extra_flags \(recipes/x\.yaml: atc\.extra_flags\.keep_dtype\)",
        keep_dtype="k.cfg",
    )
    fails(r"atc\.framework: .*graphkit sets --framework itself", framework=5)
    with pytest.raises(AtcConfigError, match="expected a mapping"):
        settings_from_mapping(["soc_version"], W)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"soc_version": 310}, r"atc\.soc_version: expected a string"),
        ({"log": 3}, r"atc\.log: expected a string"),
        ({"precision_mode": True}, r"atc\.precision_mode: expected a string"),
        ({"optypelist_for_implmode": "Sigmoid"}, r"atc\.optypelist_for_implmode: expected a list"),
        ({"optypelist_for_implmode": [1]}, r"optypelist_for_implmode: expected a list"),
        ({"fusion_switches": ["x"]}, r"atc\.fusion_switches: expected a mapping"),
        ({"fusion_switches": {"UBFusion": "off"}}, r"fusion_switches: expected a mapping"),
        ({"extra_flags": ["mode"]}, r"atc\.extra_flags: expected a mapping"),
        ({"extra_flags": {"sparsity": 0.5}}, r"extra_flags\.sparsity: expected a string, integer"),
        ({"extra_flags": {"out_nodes": None}}, r"extra_flags\.out_nodes: expected a string"),
    ],
)
def test_wrong_types(data, match):
    fails(match, **data)


def test_yaml_spellings_are_coerced():
    s = S(
        log=None,
        cann_version=5.1,
        soc_version="Ascend710",
        fusion_switches={"UBFusion": {"TbeEltwiseFusionPass": False, "ALL": True}},
    )
    assert s.log == "null"
    assert s.cann_version == "5.1"
    assert dict(s.fusion_switches["UBFusion"]) == {"TbeEltwiseFusionPass": "off", "ALL": "on"}


def test_settings_are_read_only_and_hashable():
    s = S(fusion_switches={"GraphFusion": {"SoftmaxFusionPass": "off"}}, extra_flags={"mode": 3})
    with pytest.raises(TypeError):
        s.extra_flags["mode"] = 0  # type: ignore[index]
    assert hash(s) == hash(S(fusion_switches={"GraphFusion": {"SoftmaxFusionPass": "off"}}))
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s
    plain = dataclasses.asdict(s)
    assert json.loads(json.dumps(plain))["fusion_switches"] == {"GraphFusion": {"SoftmaxFusionPass": "off"}}
    assert dataclasses.replace(s, log="debug").extra_flags == {"mode": 3}


# --- soc_version and cann_version ----------------------------------------------------------------


@pytest.mark.parametrize("soc", sorted(KNOWN_SOCS) + ["Ascend950PR_9599", "Ascend950DT_9591"])
def test_known_socs_pass(soc):
    assert S(soc_version=soc).soc_version == soc


@pytest.mark.parametrize(
    ("soc", "match"),
    [
        ("ascend310p3", r"atc\.soc_version: .*did you mean 'Ascend310P3'\? \(soc_version is case"),
        ("ASCEND310", r"did you mean 'Ascend310'\?"),
        ("Ascend310P4", r"unknown soc_version 'Ascend310P4'"),
        ("310P3", r"unknown soc_version"),
        ("ascend710", r"did you mean 'Ascend310P3'\?"),
    ],
)
def test_bad_socs(soc, match):
    fails(match, soc_version=soc)


@pytest.mark.parametrize("version", ["5.0.2", "5.1", "5.1.RC2", "5.0.4"])
def test_legacy_ascend710_with_old_cann(version):
    assert S(soc_version="Ascend710", cann_version=version).soc_version == "Ascend710"


@pytest.mark.parametrize("version", [None, "6.0", "8.0.RC1"])
def test_legacy_ascend710_refused_otherwise(version):
    fails(
        r"atc\.soc_version: 'Ascend710' .*cann_version <= 5\.1.*use 'Ascend310P3'",
        soc_version="Ascend710",
        cann_version=version,
    )


def test_cann_version_format():
    assert S(cann_version="8.0.RC1").cann_version == "8.0.RC1"
    fails(r"atc\.cann_version: 'eight' is not a CANN version", cann_version="eight")


# --- log, input_format, precision ----------------------------------------------------------------


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "null"])
def test_log_levels(level):
    assert S(log=level).log == level


def test_bad_log():
    fails(r"atc\.log: 'ERROR' .*did you mean 'error'", log="ERROR")
    fails(r"atc\.log: 'verbose' is not a valid ATC --log level", log="verbose")


@pytest.mark.parametrize("fmt", ["NCHW", "NCDHW", "ND"])
def test_onnx_input_formats(fmt):
    assert S(input_format=fmt).input_format == fmt


def test_bad_input_formats():
    fails(
        r"atc\.input_format: NCL is not a valid ATC value; ONNX models take NCHW, NCDHW or ND",
        input_format="NCL",
    )
    fails(r"NHWC is an ATC value for TensorFlow models only", input_format="NHWC")
    fails(r"'nd' is not a valid ATC value; did you mean 'ND'", input_format="nd")


def test_aipp_needs_nchw():
    fails(
        r"atc\.input_format: ND cannot be used with insert_op_conf",
        input_format="ND",
        extra_flags={"insert_op_conf": "aipp.cfg"},
    )
    assert S(input_format="NCHW", extra_flags={"insert_op_conf": "aipp.cfg"})
    assert resolve_input_format(S(extra_flags={"insert_op_conf": "a.cfg"}), {"x": 4}) == "NCHW"


@pytest.mark.parametrize(
    "mode",
    [
        "force_fp16",
        "allow_fp32_to_fp16",
        "must_keep_origin_dtype",
        "allow_mix_precision",
        "force_fp32",
        "allow_mix_precision_bf16",
    ],
)
def test_precision_modes(mode):
    assert S(precision_mode=mode).precision_mode == mode


@pytest.mark.parametrize("mode", ["fp16", "origin", "mixed_float16", "cube_fp16in_fp32out"])
def test_precision_modes_v2(mode):
    assert S(precision_mode_v2=mode).precision_mode_v2 == mode


def test_bad_precision():
    fails(r"atc\.precision_mode: 'fp16' is not a valid --precision_mode", precision_mode="fp16")
    fails(r"atc\.precision_mode_v2: 'force_fp16' is not", precision_mode_v2="force_fp16")
    fails(
        r"precision_mode and precision_mode_v2 cannot be combined",
        precision_mode="force_fp16",
        precision_mode_v2="fp16",
    )


# --- implmode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["high_performance", "high_precision", "high_performance_for_all", "high_precision_for_all"]
)
def test_implmodes(mode):
    assert S(op_select_implmode=mode).op_select_implmode == mode


def test_bad_implmode():
    fails(r"'fast' is not a valid --op_select_implmode", op_select_implmode="fast")


@pytest.mark.parametrize("mode", ["high_precision", "high_performance"])
def test_optypelist_with_a_list_mode(mode):
    s = S(op_select_implmode=mode, optypelist_for_implmode=["SoftmaxV2", "Sigmoid"])
    assert s.optypelist_for_implmode == ("SoftmaxV2", "Sigmoid")


@pytest.mark.parametrize("mode", [None, "high_precision_for_all", "high_performance_for_all"])
def test_optypelist_needs_a_list_mode(mode):
    fails(
        r"optypelist_for_implmode: needs op_select_implmode high_precision or high_performance",
        op_select_implmode=mode,
        optypelist_for_implmode=["Sigmoid"],
    )


def test_optypelist_entries():
    base = {"op_select_implmode": "high_precision"}
    fails(r"'Sigmoid,Tanh' is not an op type name", optypelist_for_implmode=["Sigmoid,Tanh"], **base)
    fails(r"'Sigmoid' is listed twice", optypelist_for_implmode=["Sigmoid", "Sigmoid"], **base)


# --- fusion switches -----------------------------------------------------------------------------


def test_fusion_switches_valid():
    s = S(
        fusion_switches={
            "GraphFusion": {"ALL": "off", "SoftmaxFusionPass": "on"},
            "UBFusion": {"TbeEltwiseFusionPass": "off"},
        }
    )
    assert check_warnings(s) == []


@pytest.mark.parametrize(
    ("switches", "match"),
    [
        (
            {"UbFusion": {"X": "off"}},
            r"fusion_switches\.UbFusion: unknown fusion group; did you "
            r"mean 'UBFusion'",
        ),
        ({"Priority": {"UBFusion": {}}}, r"Priority section is not supported"),
        ({"GraphFusion": {"SoftmaxFusionPass": "disable"}}, r"SoftmaxFusionPass: expected 'on' or"),
        ({"GraphFusion": {"Softmax:FusionPass": "off"}}, r"is not a pass name"),
    ],
)
def test_fusion_switches_invalid(switches, match):
    fails(match, fusion_switches=switches)


def test_fusion_pass_name_warnings():
    typo = S(fusion_switches={"GraphFusion": {"SoftmaxFusionpass": "off"}})
    assert any("did you mean 'SoftmaxFusionPass'" in w for w in check_warnings(typo))
    odd = S(fusion_switches={"GraphFusion": {"Softmax": "off"}})
    assert any("does not look like a fusion pass name" in w for w in check_warnings(odd))
    other = S(fusion_switches={"UBFusion": {"MatmulConfusiontransposeUbFusion": "off"}})
    assert check_warnings(other) == []


# --- extra flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"--mode": 0}, r"extra_flags\.--mode: write the flag name without the leading '--'"),
        ({"Out-Nodes": "x"}, r"does not look like an ATC flag"),
        (
            {"precision_mode": "force_fp16"},
            r"has its own setting; write it as recipes/x\.yaml: "
            r"atc\.precision_mode",
        ),
        ({"optypelist_for_implmode": "Sigmoid"}, r"has its own setting"),
        ({"framework": 5}, r"graphkit sets --framework itself"),
        ({"model": "m.onnx"}, r"graphkit sets --model itself"),
        ({"output": "o"}, r"graphkit sets --output itself"),
        ({"input_shape": "x:1"}, r"graphkit sets --input_shape itself"),
        ({"fusion_switch_file": "f.cfg"}, r"graphkit sets --fusion_switch_file itself"),
        ({"soc_version": "Ascend310"}, r"soc_version has its own setting"),
        ({"out_nodes": ""}, r"extra_flags\.out_nodes: the value must be non-empty and on one line"),
        ({"out_nodes": "a\nb"}, r"on one line"),
    ],
)
def test_extra_flag_names_and_values(extra, match):
    fails(match, extra_flags=extra)


@pytest.mark.parametrize(
    "gear", ["dynamic_batch_size", "dynamic_image_size", "dynamic_dims", "input_shape_range"]
)
def test_gear_flags_refused(gear):
    fails(rf"extra_flags\.{gear}: graphkit emits one static model per batch size", extra_flags={gear: "1,2"})


def test_several_gear_flags_are_also_called_exclusive():
    fails(
        r"mutually exclusive \(ATC E10009: dynamic_batch_size, dynamic_dims\)",
        extra_flags={"dynamic_dims": "1;2", "dynamic_batch_size": "1,2"},
    )


def test_mode():
    assert S(extra_flags={"mode": 3}).extra_flags["mode"] == 3
    assert S(extra_flags={"mode": "0"})
    fails(r"--mode=1 converts or inspects an om", extra_flags={"mode": 1})
    fails(r"7 is not a mode graphkit can emit", extra_flags={"mode": 7})


def test_modify_mixlist_needs_a_mixed_mode():
    fails(
        r"extra_flags\.modify_mixlist: needs a mixed precision mode",
        extra_flags={"modify_mixlist": "mix.json"},
    )
    fails(
        r"needs a mixed precision mode",
        precision_mode="force_fp16",
        extra_flags={"modify_mixlist": "mix.json"},
    )
    assert S(precision_mode="allow_mix_precision", extra_flags={"modify_mixlist": "m.json"})
    assert S(precision_mode_v2="mixed_float16", extra_flags={"modify_mixlist": "m.json"})


def test_per_node_output_type_needs_out_nodes():
    fails(r"'node:idx:TYPE' needs extra_flags\.out_nodes", extra_flags={"output_type": "y:0:FP16"})
    assert S(extra_flags={"output_type": "y:0:FP16", "out_nodes": "y:0"})
    assert S(extra_flags={"output_type": "FP32"})


def test_hw_layout_count_matches_fp16_nodes():
    fails(
        r"1 value\(s\) for 2 input_fp16_nodes",
        extra_flags={"input_fp16_nodes": "a;b", "is_input_adjust_hw_layout": "true"},
    )
    assert S(extra_flags={"input_fp16_nodes": "a;b", "is_input_adjust_hw_layout": "true,false"})


# --- warnings ------------------------------------------------------------------------------------


def test_op_precision_mode_warns_that_implmode_is_ignored():
    s = S(op_select_implmode="high_precision", extra_flags={"op_precision_mode": "op.ini"})
    assert any("ATC ignores them" in w for w in check_warnings(s))
    assert check_warnings(S(extra_flags={"op_precision_mode": "op.ini"})) == []


@pytest.mark.parametrize(
    "mode", [{"precision_mode": "must_keep_origin_dtype"}, {"precision_mode_v2": "origin"}]
)
def test_keep_dtype_warns_under_keep_origin(mode):
    s = S(extra_flags={"keep_dtype": "keep.cfg"}, **mode)
    assert any("keep_dtype has no effect" in w for w in check_warnings(s))


def test_keep_dtype_quiet_otherwise():
    assert check_warnings(S(precision_mode="force_fp16", extra_flags={"keep_dtype": "k.cfg"})) == []
    both = S(extra_flags={"keep_dtype": "k.cfg", "customize_dtypes": "c.cfg"})
    assert any("customize_dtypes wins" in w for w in check_warnings(both))


def test_other_warnings():
    unknown = check_warnings(S(extra_flags={"enable_singel_stream": True}))
    assert any("did you mean 'enable_single_stream'" in w for w in unknown)
    onnx_name = S(op_select_implmode="high_precision", optypelist_for_implmode=["Softmax"])
    assert any("(here: SoftmaxV2)" in w for w in check_warnings(onnx_name))
    assert any("bf16" in w for w in check_warnings(S(precision_mode="allow_mix_precision_bf16")))
    assert check_warnings(S(soc_version="Ascend910B3", precision_mode="allow_mix_precision_bf16")) == []
    old = check_warnings(S(soc_version="Ascend310B1", cann_version="6.0"))
    assert any("first appears in CANN 6.2" in w for w in old)
    assert check_warnings(S(soc_version="Ascend310B1", cann_version="6.3.RC2")) == []
    assert any(
        "AIPP" in w or "static AIPP" in w for w in check_warnings(S(extra_flags={"enable_small_channel": 1}))
    )


# --- merging pass hints --------------------------------------------------------------------------


def test_hints_union_op_types_in_order():
    recipe = S(op_select_implmode="high_performance", optypelist_for_implmode=["Sigmoid"])
    merged = merge_pass_hints(
        recipe,
        [
            {"optypelist_for_implmode": ["Tanh", "Sigmoid"], "op_select_implmode": "high_performance"},
            {"optypelist_for_implmode": ["Relu"]},
        ],
        W,
    )
    assert merged.optypelist_for_implmode == ("Sigmoid", "Tanh", "Relu")
    assert merge_pass_hints(recipe, [], W) == recipe


def test_hint_conflicting_with_the_recipe_names_both():
    recipe = S(op_select_implmode="high_precision")
    hint = {"source": "passes[2] set_implmode", "op_select_implmode": "high_performance"}
    with pytest.raises(
        AtcConfigError,
        match=r"op_select_implmode 'high_performance' asked by "
        r"passes\[2\] set_implmode conflicts with 'high_precision' from the recipe "
        r"\(recipes/x\.yaml: atc\.op_select_implmode\)",
    ):
        merge_pass_hints(recipe, [hint], W)


def test_two_hints_of_different_modes_name_both():
    hints = [
        {"source": "passes[1] a", "op_select_implmode": "high_performance"},
        {"source": "passes[4] b", "op_select_implmode": "high_precision"},
    ]
    with pytest.raises(
        AtcConfigError,
        match=r"asked by passes\[4\] b conflicts with "
        r"'high_performance' from passes\[1\] a",
    ):
        merge_pass_hints(S(), hints, W)


def test_hints_merge_switches_and_flags_and_revalidate():
    hint = {
        "fusion_switches": {"UBFusion": {"TbeEltwiseFusionPass": "off"}},
        "extra_flags": {"status_check": True},
    }
    merged = merge_pass_hints(S(fusion_switches={"GraphFusion": {"SoftmaxFusionPass": "off"}}), [hint], W)
    assert set(merged.fusion_switches) == {"GraphFusion", "UBFusion"}
    with pytest.raises(AtcConfigError, match=r"fusion_switches\.UBFusion\.TbeEltwiseFusionPass"):
        merge_pass_hints(merged, [{"fusion_switches": {"UBFusion": {"TbeEltwiseFusionPass": "on"}}}], W)
    with pytest.raises(AtcConfigError, match=r"needs op_select_implmode high_precision or"):
        merge_pass_hints(
            S(op_select_implmode="high_precision_for_all"), [{"optypelist_for_implmode": ["Sigmoid"]}], W
        )


def test_bad_hints():
    with pytest.raises(AtcConfigError, match=r"\[pass hint #0\]\.soc_version: unknown ATC setting"):
        merge_pass_hints(S(), [{"soc_version": "Ascend910B3"}], W)
    with pytest.raises(AtcConfigError, match=r"optypelist_for_implmode: expected a list"):
        merge_pass_hints(S(), [{"optypelist_for_implmode": "Sigmoid"}], W)


# --- inputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ranks", "fmt"),
    [
        ({"mel": 3}, "ND"),
        ({"x": 4, "y": 4}, "NCHW"),
        ({"v": 5}, "NCDHW"),
        ({"x": 4, "y": 3}, "ND"),
        ({"w": 2}, "ND"),
        ({}, "ND"),
    ],
)
def test_resolve_input_format(ranks, fmt):
    assert resolve_input_format(S(), ranks) == fmt
    assert resolve_input_format(S(input_format="ND"), ranks) == "ND"


def test_input_shape_arg():
    assert input_shape_arg({"mel": [4, 80, 200], "other": (1, 2)}) == "mel:4,80,200;other:1,2"
    assert input_shape_arg({"a": [], "b": [1, 3]}) == "a:;b:1,3"


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (
            {"a:b": [1]},
            r"cannot express a name containing ':', ';', ','.*rename the input with the rename_io pass",
        ),
        ({"a;b": [1]}, r"rename the input with the rename_io pass"),
        ({"a,b": [1]}, r"rename the input with the rename_io pass"),
        ({"x": [-1, 3]}, r"-1 asks for a dynamic dim; graphkit emits static models"),
        ({"x": [0, 3]}, r"dim 0 must be positive"),
        ({"x": [True]}, r"dim True is not an integer"),
        ({"x": "1,2"}, r"expected a list of dims"),
    ],
)
def test_bad_shapes(shapes, match):
    with pytest.raises(AtcConfigError, match=match):
        input_shape_arg(shapes)


ECAPA_INPUTS = {"mel": ["batch", 80, 200]}


def test_validate_inputs_ok():
    validate_inputs(S(), {"mel": [4, 80, 200]}, ECAPA_INPUTS)
    validate_inputs(S(), {"x": [2, 3, 8]}, {"x": [None, 3, 8], "static": [1, 4]})
    validate_inputs(S(), {"v": [1, 1, 2, 8, 8]}, {"v": ["b", 1, 2, 8, 8]})


@pytest.mark.parametrize(
    ("shapes", "model", "match"),
    [
        (
            {"mels": [4, 80, 200]},
            ECAPA_INPUTS,
            r"'mels' is not an input of the model; did you mean "
            r"'mel'",
        ),
        ({"mel": [4, 80]}, ECAPA_INPUTS, r"'mel' has rank 2, the model input has rank 3"),
        ({"mel": [4, 64, 200]}, ECAPA_INPUTS, r"'mel' dim 1 is 64, the model fixes it to 80"),
        ({"mel": [4, 80, 200]}, {**ECAPA_INPUTS, "len": ["b"]}, r"'len' has symbolic dims"),
        ({"a;b": [1]}, {"a;b": [1]}, r"rename the input with the rename_io pass"),
        (
            {"x": [1, 1, 1, 1, 1], "y": [1]},
            {"x": [1, 1, 1, 1, 1], "y": [1]},
            r"'x' has rank 5 but --input_format=ND \(chosen from the ranks of the given shapes\) "
            r"needs rank <= 4",
        ),
        (
            {"x": [2, 3, 8, 8]},
            {"x": [None, 3, 8, 8], "static": [1, 4]},
            r"'static' has rank 2 but --input_format=NCHW",
        ),
        (
            {"x": [1, 2, 3, 4]},
            {"x": [1, 2, 3, 4], "y": [1, 2, 3]},
            r"'y' has rank 3 but "
            r"--input_format=NCHW .* needs rank 4",
        ),
    ],
)
def test_validate_inputs_errors(shapes, model, match):
    with pytest.raises(AtcConfigError, match=match):
        validate_inputs(S(), shapes, model)


def test_validate_inputs_with_an_explicit_format():
    with pytest.raises(AtcConfigError, match=r"--input_format=NCHW needs rank 4"):
        validate_inputs(S(input_format="NCHW"), {"mel": [4, 80, 200]}, ECAPA_INPUTS)
    with pytest.raises(AtcConfigError, match=r"--input_format=NCDHW needs rank 5"):
        validate_inputs(S(input_format="NCDHW"), {"x": [1, 2, 3, 4]}, {"x": [1, 2, 3, 4]})


# --- the command line ----------------------------------------------------------------------------


def test_command_order_and_determinism():
    s = S(
        precision_mode="allow_mix_precision",
        op_select_implmode="high_precision",
        optypelist_for_implmode=["SoftmaxV2", "Sigmoid"],
        extra_flags={
            "status_check": True,
            "enable_single_stream": False,
            "modify_mixlist": "m.json",
            "out_nodes": "a:0;b:0",
        },
    )
    kw = {"model": "m.onnx", "output": "m_bs1", "shapes": {"x": [1, 2]}, "fusion_switch_file": None}
    cmd = atc_command(s, **kw)
    assert cmd == atc_command(s, **kw)
    assert cmd.startswith(
        "atc --framework=5 --model=m.onnx --output=m_bs1 --input_format=ND "
        '--input_shape="x:1,2" --soc_version=Ascend310P3 --log=error '
        "--precision_mode=allow_mix_precision --op_select_implmode=high_precision "
        '--optypelist_for_implmode="SoftmaxV2,Sigmoid" '
    )
    assert cmd.endswith(
        '--enable_single_stream=false --modify_mixlist=m.json --out_nodes="a:0;b:0" --status_check=1'
    )


def test_command_checks_its_arguments():
    with pytest.raises(ValueError, match="fusion_switch_file exactly when"):
        atc_command(S(), model="m.onnx", output="o", shapes={"x": [1]}, fusion_switch_file="f.cfg")
    switches = S(fusion_switches={"UBFusion": {"TbeEltwiseFusionPass": "off"}})
    with pytest.raises(ValueError, match="fusion_switch_file exactly when"):
        atc_command(switches, model="m.onnx", output="o", shapes={"x": [1]}, fusion_switch_file=None)
    with pytest.raises(AtcConfigError, match="no input shapes"):
        atc_command(S(), model="m.onnx", output="o", shapes={}, fusion_switch_file=None)
    with pytest.raises(AtcConfigError, match="unknown soc_version"):
        atc_command(
            AtcSettings(soc_version="Ascend999"),
            model="m.onnx",
            output="o",
            shapes={"x": [1]},
            fusion_switch_file=None,
        )
    with pytest.raises(ValueError, match="one-line path"):
        atc_command(S(), model="a\nb.onnx", output="o", shapes={"x": [1]}, fusion_switch_file=None)


def test_quoting():
    s = S(
        extra_flags={
            "out_nodes": "y",
            "output_type": "FP16",
            "debug_dir": "~/dbg",
            "op_compiler_cache_dir": "/tmp/$HOME's cache",
        }
    )
    cmd = atc_command(
        s, model="my models/m.onnx", output="out dir/m", shapes={"x y": [1, 2]}, fusion_switch_file=None
    )
    assert '--model="my models/m.onnx"' in cmd
    assert '--input_shape="x y:1,2"' in cmd
    assert '--debug_dir="~/dbg"' in cmd
    assert "--output_type=FP16" in cmd
    got = flags(cmd)
    assert got["model"] == "my models/m.onnx"
    assert got["output"] == "out dir/m"
    assert got["op_compiler_cache_dir"] == "/tmp/$HOME's cache"
    assert got["debug_dir"] == "~/dbg"


def test_boolean_extra_flags():
    s = S(
        extra_flags={
            "enable_small_channel": True,
            "insert_op_conf": "aipp.cfg",
            "enable_compress_weight": True,
            "display_model_info": False,
        }
    )
    got = flags(
        atc_command(s, model="m.onnx", output="o", shapes={"x": [1, 3, 8, 8]}, fusion_switch_file=None)
    )
    assert got["enable_small_channel"] == "1"
    assert got["display_model_info"] == "0"
    assert got["enable_compress_weight"] == "true"
    assert got["input_format"] == "NCHW"


_NAME_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":;,")
_PATH_CHARS = st.characters(blacklist_categories=("Cc", "Cs"))


@settings(max_examples=150, deadline=None)
@given(
    shapes=st.dictionaries(
        st.text(_NAME_CHARS, min_size=1, max_size=12),
        st.lists(st.integers(1, 100_000), max_size=5),
        min_size=1,
        max_size=4,
    ),
    model=st.text(_PATH_CHARS, min_size=1, max_size=20),
    output=st.text(_PATH_CHARS, min_size=1, max_size=20),
    ops=st.lists(st.from_regex(r"[A-Z][A-Za-z0-9]{0,10}", fullmatch=True), max_size=3, unique=True),
)
def test_command_parses_back(shapes, model, output, ops):
    s = AtcSettings(op_select_implmode="high_precision" if ops else None, optypelist_for_implmode=tuple(ops))
    got = flags(atc_command(s, model=model, output=output, shapes=shapes, fusion_switch_file=None))
    want = {
        "framework": "5",
        "model": model,
        "output": output,
        "input_format": resolve_input_format(s, {n: len(d) for n, d in shapes.items()}),
        "input_shape": input_shape_arg(shapes),
        "soc_version": "Ascend310P3",
        "log": "error",
    }
    if ops:
        want |= {"op_select_implmode": "high_precision", "optypelist_for_implmode": ",".join(ops)}
    assert got == want
    parsed = [part.split(":") for part in got["input_shape"].split(";")]
    assert {n: [int(d) for d in dims.split(",") if d] for n, dims in parsed} == {
        n: list(d) for n, d in shapes.items()
    }


# --- fusion switch files -------------------------------------------------------------------------


def test_fusion_switch_json_round_trip():
    switches = {
        "UBFusion": {"TbeEltwiseFusionPass": "off"},
        "GraphFusion": {"SoftmaxFusionPass": "on", "ALL": "off"},
    }
    text = fusion_switch_json(S(fusion_switches=switches))
    assert text is not None and text.endswith("}\n")
    assert json.loads(text) == {"Switch": switches}
    assert text.index("GraphFusion") < text.index("UBFusion")
    assert text.index('"ALL"') < text.index("SoftmaxFusionPass")
    assert parse_fusion_switch(text) == switches
    assert S(fusion_switches=parse_fusion_switch(text)).fusion_switches == switches


def test_fusion_switch_json_none_without_switches():
    assert fusion_switch_json(S()) is None
    assert fusion_switch_json(S(fusion_switches={"UBFusion": {}})) is None


def test_parse_form_a():
    text = "TransposeReshapeFusionPass:off\n\nReshapeTransposeFusionPass : off\r\nSoftmaxFusionPass:on\n"
    assert parse_fusion_switch(text) == {
        ANY_GROUP: {
            "TransposeReshapeFusionPass": "off",
            "ReshapeTransposeFusionPass": "off",
            "SoftmaxFusionPass": "on",
        }
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"empty"),
        ("SoftmaxFusionPass\n", r"line 1: expected 'PassName:off'"),
        ("A:off\nB:disable\n", r"line 2: expected"),
        ("A:off\nA:on\n", r"line 2: A is switched both on and off"),
        ('{"Switch": {"UBFusion": {"A": "off"}', r"invalid JSON at line 1"),
        ('{"Switch": {"UBFusion": {"A": "off", "A": "on"}}}', r"key 'A' appears twice"),
        ('{"Switch": {}, "Priority": {}}', r"Priority section is not supported"),
        ('{"switch": {}}', r"expected one top-level key 'Switch'"),
        ('{"Switch": {"UBFusion": {"A": false}}}', r"must map group names"),
        ('{"Switch": {"UBfusion": {"A": "off"}}}', r"unknown fusion group; did you mean 'UBFusion'"),
    ],
)
def test_parse_fusion_switch_errors(text, match):
    with pytest.raises(AtcConfigError, match=match):
        parse_fusion_switch(text)


# --- op types and the script ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("onnx", "ascend"),
    [
        ("Softmax", "SoftmaxV2"),
        ("MatMul", "BatchMatMulV2"),
        ("Div", "RealDiv"),
        ("Sigmoid", "Sigmoid"),
        ("Relu", "Relu"),
        ("LessOrEqual", "LessEqual"),
    ],
)
def test_onnx_to_ascend_type(onnx, ascend):
    assert onnx_to_ascend_type(onnx) == ascend


@pytest.mark.parametrize("op", ["Conv", "Gemm", "Transpose", "ArgMax"])
def test_partitioned_call_ops_cannot_be_listed(op):
    with pytest.raises(AtcConfigError, match=rf"'{op}' cannot be listed .*PartitionedCall"):
        onnx_to_ascend_type(op)


def test_atc_script_text():
    cmds = [
        atc_command(
            S(), model=f"m_bs{b}.onnx", output=f"m_bs{b}", shapes={"x": [b, 2]}, fusion_switch_file=None
        )
        for b in (1, 4)
    ]
    text = atc_script(cmds)
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert any("generated by graphkit" in line.lower() for line in lines)
    assert any("<output>*.om" in line for line in lines)
    assert any("command -v atc" in line for line in lines)
    assert any("set_env.sh" in line for line in lines)
    assert lines[-2:] == cmds and text.endswith("\n")
    assert 'cd "$(dirname "$0")"' not in atc_script(cmds, cd_to_script_dir=False)
    with pytest.raises(ValueError, match="not a one-line atc command"):
        atc_script(["rm -rf /"])


@pytest.mark.skipif(shutil.which("bash") is None or sys.platform == "win32", reason="needs bash")
def test_atc_script_runs_and_explains_a_missing_atc(tmp_path):
    script = tmp_path / "atc.sh"
    script.write_text(
        atc_script([atc_command(S(), model="m.onnx", output="m", shapes={"x": [1]}, fusion_switch_file=None)])
    )
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    env = {"PATH": os.path.dirname(shutil.which("bash") or "/bin")}
    if shutil.which("atc", path=env["PATH"]):
        pytest.skip("an atc is installed here")
    run = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 127
    assert "source the CANN environment" in run.stderr
