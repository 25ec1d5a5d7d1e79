"""The ATC flags graphkit knows, as data: soc names, valid values, exclusions, name patterns.

Sources: ``docs/ascend-toolchain.md`` §1 (flags; §1.2 soc names, §1.7 the static rule list) and
§2 (fusion switches). :mod:`graphkit.ascend.settings` validates against these tables.
"""

from __future__ import annotations

import re

# §1.2: CamelCase spellings; case matters (ASCEND310 is rejected by ATC). The 310P vGPU parts are
# spelled "Ascend310P3Vir01" in CANN's own sources (the doc's map lists them lower-cased).
KNOWN_SOCS = frozenset(
    ["Ascend310", "Ascend310P1", "Ascend310P3", "Ascend310P5", "Ascend310P7"]
    + [f"Ascend310P3Vir{n}" for n in ("01", "02", "04", "08")]
    + [f"Ascend310B{n}" for n in range(1, 5)]
    + ["Ascend910", "Ascend910A", "Ascend910ProA", "Ascend910B", "Ascend910ProB", "Ascend910PremiumA"]
    + [f"Ascend910{s}" for s in ("B1", "B2", "B2C", "B3", "B4", "B4-1")]
    + [f"Ascend910_{n}" for n in ("9391", "9392", "9381", "9382", "9372", "9362")]
    + ["Ascend950", "Ascend950DT", "Ascend950PR"]
)


SOC_WITH_NPU = re.compile(r"Ascend950(DT|PR)_\d{4}")  # <ChipName>_<NPUName>, as for A3 parts


LEGACY_SOC = "Ascend710"  # the 310P before its rename; CANN <= 5.1 only (§1.2)


# Families and the first CANN release whose docs name them (§1.2, §1.8): older → a warning.
SOC_SINCE = (("Ascend310P", (6, 0)), ("Ascend310B", (6, 2)), ("Ascend910_93", (8, 5)), ("Ascend950", (8, 5)))


NO_BF16 = ("Ascend310", "Ascend710", "Ascend910", "Ascend910A", "Ascend910ProA", "Ascend910PremiumA")


LOG_LEVELS = ("debug", "info", "warning", "error", "null")


ONNX_INPUT_FORMATS = ("NCHW", "NCDHW", "ND")


PRECISION_MODES = (
    "force_fp16",
    "allow_fp32_to_fp16",
    "must_keep_origin_dtype",
    "allow_mix_precision",
    "allow_mix_precision_fp16",
    "allow_mix_precision_bf16",
    "force_fp32",
    "cube_fp16in_fp32out",
    "allow_fp32_to_bf16",
)


PRECISION_MODES_V2 = (
    "fp16",
    "origin",
    "cube_fp16in_fp32out",
    "mixed_float16",
    "mixed_bfloat16",
    "mixed_hif8",
)


MIXED_MODES = frozenset(
    {
        "allow_mix_precision",
        "allow_mix_precision_fp16",
        "allow_mix_precision_bf16",
        "mixed_float16",
        "mixed_bfloat16",
    }
)


PRECISION_SINCE = {
    "allow_mix_precision_fp16": (6, 3),
    "allow_mix_precision_bf16": (6, 3),
    "force_fp32": (7, 0),
    "cube_fp16in_fp32out": (7, 0),
    "allow_fp32_to_bf16": (7, 0),
}


# --output_type (§1.6): 8.x's four, then 9.0's wider ones and Atlas 350's HIF8/FP8
OUTPUT_TYPES = ("FP32", "FP16", "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64", "INT64")
OUTPUT_TYPES += ("DOUBLE", "HIF8", "FP8")


IMPL_MODES = ("high_performance", "high_precision", "high_performance_for_all", "high_precision_for_all")


LIST_IMPL_MODES = frozenset({"high_performance", "high_precision"})  # §1.5: not the _for_all ones


FUSION_GROUPS = ("GraphFusion", "UBFusion")


ANY_GROUP = "*"  # the group parse_fusion_switch gives form A lines, which name no group


PASS_NAME = re.compile(r"[A-Za-z0-9_]+")


# Passes the toolchain doc names (§2); other names are fine, a near miss of these is a warning.
KNOWN_PASSES = frozenset(
    {
        "ReshapeTransposeFusionPass",
        "TransposeReshapeFusionPass",
        "SoftmaxFusionPass",
        "GroupNormFusionPass",
        "TbeEltwiseFusionPass",
        "SameInputConv2dPass",
        "ConstToAttrPass",
        "V100RequantFusionPass",
        "V200RequantFusionPass",
        "TbePool2dQuantFusionPass",
        "TbeReduceElemwiseFusionPass",
        "AABiasaddConvFusion",
        "BatchMatMulFusionPass",
        "DepthwiseFusionPass",
    }
)


# Flags graphkit writes itself, and settings that have their own field.
GRAPHKIT_FLAGS = ("framework", "model", "output", "input_shape", "fusion_switch_file")


FIRST_CLASS = (
    "soc_version",
    "input_format",
    "log",
    "precision_mode",
    "precision_mode_v2",
    "op_select_implmode",
    "optypelist_for_implmode",
)


GEAR_FLAGS = ("dynamic_batch_size", "dynamic_image_size", "dynamic_dims", "input_shape_range")


FLAG_NAME = re.compile(r"[a-z][a-z0-9_]*")


# ATC flags graphkit knows of; any other name passes through with a warning.
KNOWN_EXTRA_FLAGS = frozenset(
    {
        "mode",
        "check_report",
        "out_nodes",
        "output_type",
        "insert_op_conf",
        "enable_small_channel",
        "input_fp16_nodes",
        "is_input_adjust_hw_layout",
        "is_output_adjust_hw_layout",
        "compression_optimize_conf",
        "modify_mixlist",
        "keep_dtype",
        "customize_dtypes",
        "op_precision_mode",
        "op_debug_level",
        "op_compiler_cache_mode",
        "op_compiler_cache_dir",
        "debug_dir",
        "enable_scope_fusion_passes",
        "buffer_optimize",
        "disable_reuse_memory",
        "enable_single_stream",
        "enable_compress_weight",
        "compress_weight_conf",
        "status_check",
        "display_model_info",
        "oo_level",
        "host_env_os",
        "host_env_cpu",
        "allow_hf32",
    }
)


# Booleans: these flags take 0/1 (§1.6 enable_small_channel; CANN docs for the others); every
# other flag gets true/false, the spelling of is_input_adjust_hw_layout (§1.6).
BOOL_AS_INT = frozenset(
    {"enable_small_channel", "status_check", "disable_reuse_memory", "display_model_info"}
)


BUILD_MODES = {0: "build an om (the default)", 3: "precheck only"}


NOT_BUILD_MODES = (1, 5, 6)  # om/graph → JSON and om info: they do not convert an ONNX model


ASCEND_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


BAD_INPUT_CHARS = re.compile(r"[:;,\x00-\x1f\x7f]")
