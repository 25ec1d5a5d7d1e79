"""What ATC accepts of ONNX, as data: its operator lists, opset range and per-op limits.

Sources: ``docs/ascend-toolchain.md`` §1.8 (opsets), §3.1 (lists), §3.2-§3.3 (limits). Two
lists are published, CANN 8.0.0 and CANN 5.0.4; 6.x and 7.x have none of their own, so
:func:`supported_ops` gives them the 8.0.0 list as the closest published one. The doc's
spellings are normalised to the op types a model carries (the doc writes ``Argmax``,
``LogSoftMax`` and ``Cumsum`` for ``ArgMax``, ``LogSoftmax`` and ``CumSum``).
:mod:`graphkit.ascend.lint` reads these.
"""

from __future__ import annotations

from types import MappingProxyType

from graphkit.errors import AtcConfigError

# CANN 8.0.0 "支持ONNX算子清单" (operatorlist_00176), ONNX spellings.
ONNX_OPS_8_0 = frozenset(
    """
    Abs Acos Acosh AdaptiveAvgPool2D Add AffineGrid And ArgMax ArgMin AscendAntiQuant AscendQuant Asin
    Asinh Atan Atanh AveragePool BatchNormalization BatchMultiClassNMS BitShift BitwiseAnd BitwiseNot
    BitwiseOr BitwiseXor Cast Ceil Celu Clip Compress Concat Constant ConstantOfShape Conv ConvTranspose
    Corr Cos Cosh CumSum DeformableConv2D DepthToSpace Det Div Dropout DynSeqOuter Einsum Elu
    EmbeddingBag Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GRU Hardmax
    HardSigmoid HardSwish Identity If InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu
    Less LessOrEqual Log LogSoftmax LpNormalization LpPool LRN LSTM LSTMP MatMul Max MaxPool MaxRoiPool
    MaxUnpool Mean MeanVarianceNormalization Min Mod MovingSumWithSigmoid Mul Multinomial Neg
    NonMaxSuppression NonZero Not OneHot Or Pad Pow RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMean
    ReduceMin ReduceProd ReduceSumSquare ReduceSum ReduceMax Relu Reshape Resize ReverseSequence
    RoiAlign RoiExtractor Round PRelu Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign
    Sin Sinh Size Slice Softmax SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth Split Sqrt
    Squeeze Sub Sum Tan Tanh TfIdfVectorizer ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Where
    Xor
    """.split()
)

# CANN 5.0.4 (operatorlist_0071): "roughly the same core set", plus and minus these (§3.1);
# Upsample is in 5.0.4 and in the opset 9/10 parser map, but not in the 8.0.0 list.
_ONLY_5_0 = frozenset(
    "Addcmul AdaptiveMaxPool2D AscendRequant AscendRequantS16 AscendDequant AscendDequantS16 "
    "BatchMatMul Upsample".split()
)
_NOT_IN_5_0 = frozenset(
    "Einsum GRU GridSample IsInf IsNaN LayerNormalization Tan Trilu SoftmaxCrossEntropyLoss "
    "BitwiseAnd BitwiseNot BitwiseOr BitwiseXor RandomNormal RandomNormalLike".split()
)
ONNX_OPS_5_0 = (ONNX_OPS_8_0 - _NOT_IN_5_0) | _ONLY_5_0

# Custom NPU/Ascend ops the parser map accepts (§3.1), in whatever domain the exporter wrote.
CUSTOM_OPS = frozenset(
    "NPUFastGelu NPUMultiHeadAttention NPURoiAlign BatchMultiClassNMS RoiExtractor DeformableConv2D "
    "YoloV5DetectionOutput AdaptiveAvgPool2D AscendAntiQuant AscendQuant Corr DynSeqOuter EmbeddingBag "
    "LSTMP MovingSumWithSigmoid".split()
)

# What to do instead, for unsupported ops where §3.1/§6 says more than "rewrite it".
REWRITE_HINTS = MappingProxyType(
    {
        "Upsample": "re-export at opset >= 11 so the exporter writes Resize",
        "Gelu": "export at opset <= 17 so Gelu is written as Erf/Mul/Add",
        "Loop": "unroll it at export (trace with a fixed trip count)",
        "Scan": "unroll it at export (trace with a fixed sequence length)",
        "Mish": "write it as x * Tanh(Softplus(x))",
        "CastLike": "replace it with Cast to the known dtype",
    }
)


# Limits behind the pre-ATC checks (§3.3: msit KnowledgeSplitLargeKernelConv, KnowledgeAvgPoolSplit).
WIDE_KERNEL = 192  # wider Conv kernels are slow on the 310/310P
POOL_KERNEL = 255  # the ISA's pooling window limit: larger AveragePools get extra TransData

# Ops that move index values without changing them (through their input 0), and ops whose
# operands must share a dtype: where TopK/ArgMax's int32-on-NPU indices meet int64 (§3.2, E89999).
INDEX_PASS_THROUGH = frozenset(
    "Reshape Squeeze Unsqueeze Flatten Transpose Identity Slice Gather Expand Tile Split".split()
)
INDEX_ARITH = frozenset(
    "Add Sub Mul Div Mod Pow Neg Abs Equal Less LessOrEqual Greater GreaterOrEqual Where Max Min "
    "Sum Mean Clip".split()
)
INDEX_OUTPUT = MappingProxyType({"TopK": 1, "ArgMax": 0, "ArgMin": 0})  # op -> its indices output

# Ops a Conv1d chain runs through (msit KnowledgeConv1d2Conv2d's elementwise set, §5.2).
CONV1D_CHAIN_OPS = frozenset(
    "Mul Add Sub Div Abs Neg Tanh Sigmoid Relu LeakyRelu PRelu Elu Selu Clip BatchNormalization "
    "Concat Split Identity Dropout".split()
)


def max_opset(cann: tuple[int, int]) -> int:
    """The newest opset ATC's parsers know (§1.8: 5.0.x pages list v8-v13, 6.0.x up to v15-v16,
    6.3 onwards up to v18)."""
    return 13 if cann < (6, 0) else 16 if cann < (6, 3) else 18


def supported_ops(cann: tuple[int, int]) -> frozenset[str]:
    """The default-domain op types ATC parses for a CANN (major, minor) version."""
    return ONNX_OPS_5_0 if cann < (6, 0) else ONNX_OPS_8_0


def list_name(cann: tuple[int, int]) -> str:
    """Which published list :func:`supported_ops` uses, for messages."""
    return "5.0.4" if cann < (6, 0) else "8.0.0"


# §1.5, msit's ONNX parser map: the Ascend IR type an ONNX op becomes.
ONNX_TO_ASCEND = MappingProxyType(
    {
        "Softmax": "SoftmaxV2",
        "LogSoftmax": "LogSoftmaxV2",
        "MatMul": "BatchMatMulV2",
        "Slice": "StridedSliceV2",
        "Pad": "PadV3",
        "Squeeze": "SqueezeV3",
        "Unsqueeze": "UnsqueezeV3",
        "Div": "RealDiv",
        "Where": "SelectV2",
        "Sum": "AccumulateNV2",
        "BatchNormalization": "BatchNorm",
        "InstanceNormalization": "InstanceNorm",
        "ReduceL1": "LpNorm",
        "ReduceL2": "LpNorm",
        "ReduceSumSquare": "SquareSumV1",
        "GlobalAveragePool": "AvgPool",
        "GlobalMaxPool": "MaxPool",
        "CumSum": "Cumsum",
        "GatherND": "GatherNd",
        "ScatterND": "ScatterNd",
        "LSTM": "CommonLSTM",
        "GRU": "CommonGRU",
        "And": "LogicalAnd",
        "Or": "LogicalOr",
        "Not": "LogicalNot",
        "GreaterOrEqual": "GreaterEqual",
        "LessOrEqual": "LessEqual",
        "MeanVarianceNormalization": "MVNV2",
    }
)


# Ops the parser expands into a PartitionedCall body (the doc names these of about 40).
PARTITIONED_CALL_OPS = frozenset(
    {
        "Conv",
        "Gemm",
        "Gather",
        "Transpose",
        "Concat",
        "Split",
        "Resize",
        "ReduceMean",
        "ReduceMax",
        "Clip",
        "Max",
        "Min",
        "MaxPool",
        "AveragePool",
        "NonZero",
        "OneHot",
        "NonMaxSuppression",
        "ArgMax",
    }
)


def onnx_to_ascend_type(op_type: str) -> str:
    """The Ascend IR type ATC gives an ONNX op (what optypelist/keep_dtype/mixlist expect)."""
    if op_type in PARTITIONED_CALL_OPS:
        example = " (Conv becomes e.g. Conv2D)" if op_type == "Conv" else ""
        raise AtcConfigError(
            f"ONNX op '{op_type}' cannot be listed by its ONNX name: ATC's parser expands it into "
            "a PartitionedCall body, so its Ascend IR type is known only after parsing"
            f"{example}; list the Ascend IR type itself"
        )
    return ONNX_TO_ASCEND.get(op_type, op_type)
