"""The exported encoder's int8 copy, its activation scales fixed at publish time.

ONNX Runtime's dynamic quantisation has the fastest int8 kernels on CPU, but it measures each
call's activation range, so a user's vector would depend on the rest of the batch. The graph
``quantize_dynamic`` writes is kept; each ``DynamicQuantizeLinear`` becomes a ``QuantizeLinear``
with the scale of the range seen on calibration histories, and each product (integer matrix
product, cast, scale, bias) is fused into one ``MatMulIntegerToFloat``, which ONNX Runtime does
by itself only behind ``DynamicQuantizeLinear``. (Its static quantiser measured slower: it
leaves the bias additions outside the products.)"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recstream.model.layout import INT8_SCALES

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, NodeProto

UINT8_MAX = 255
_ONE = "recstream_one"  # a scalar 1.0: the weight scale is folded into the activation's


def calibrated_int8(source: Path, calibration: list[np.ndarray]) -> bytes:
    """``source`` (an exported float32 encoder) with int8 weight products whose activation
    scales come from running it on ``calibration`` (right-padded int64 batches)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        folded, dynamic = Path(tmp) / "folded.onnx", Path(tmp) / "dynamic.onnx"
        # ONNX Runtime's graph optimisation folds the exported weight slices and transposes
        # into constants; only a product with a constant weight can be quantised.
        quant_pre_process(str(source), str(folded), skip_symbolic_shape=True)
        quantize_dynamic(
            folded, dynamic, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
        model = onnx.load(str(dynamic))
        quantizers = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
        ranges = _ranges(folded, [n.input[0] for n in quantizers], calibration)
        _fix_scales(model.graph, ranges)
        model = _fold_constants(model, Path(tmp))
        _fuse_products(model.graph)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
        onnx.helper.set_model_props(model, dict([INT8_SCALES]))
        return bytes(model.SerializeToString())


def _ranges(
    folded: Path, names: list[str], batches: list[np.ndarray]
) -> dict[str, tuple[float, float]]:
    """Each tensor's smallest and largest value over ``batches``, widened to include 0 (as
    ``DynamicQuantizeLinear`` does, so that 0 is exact)."""
    import onnx
    import onnxruntime

    model = onnx.load(str(folded))
    for name in names:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    low, high = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for batch in batches:
        for name, value in zip(names, session.run(names, {"seq": batch}), strict=True):
            low[name] = min(low[name], float(value.min()))
            high[name] = max(high[name], float(value.max()))
    return {name: (low[name], high[name]) for name in names}


def uint8_params(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point mapping [low, high] (which holds 0) onto 0..255, as
    ``DynamicQuantizeLinear`` computes them from a call's range."""
    scale = (high - low) / UINT8_MAX or 1.0
    return scale, int(np.clip(np.round(-low / scale), 0, UINT8_MAX))


def _fix_scales(graph: GraphProto, ranges: dict[str, tuple[float, float]]) -> None:
    """Replace every ``DynamicQuantizeLinear`` by a ``QuantizeLinear`` with constant scale and
    zero point, under the names its consumers already read."""
    from onnx import helper, numpy_helper

    nodes = []
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        quantized, scale_name, zero_name = node.output
        scale, zero = uint8_params(*ranges[node.input[0]])
        graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, np.float32), scale_name),
            numpy_helper.from_array(np.array(zero, np.uint8), zero_name),
        ])  # fmt: skip
        inputs = [node.input[0], scale_name, zero_name]
        nodes.append(helper.make_node("QuantizeLinear", inputs, [quantized], name=node.name))
    del graph.node[:]
    graph.node.extend(nodes)


def _fold_constants(model: ModelProto, tmp: Path) -> ModelProto:
    """ONNX Runtime's basic (portable) optimisation: each product's scale and bias become
    constants, which the fusion needs."""
    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp / "basic.onnx")
    data = model.SerializeToString()
    onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp / "basic.onnx"))


def _fuse_products(graph: GraphProto) -> None:
    """``MatMulInteger -> Cast -> Mul(constant scale) [-> Add(constant bias)]`` into one
    ``MatMulIntegerToFloat``; a product of another shape is left as it is."""
    from onnx import numpy_helper

    constants = {t.name: t for t in graph.initializer}
    readers: dict[str, list[NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def sole(name: str, op_type: str) -> NodeProto | None:
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), _ONE))
    replaced: dict[int, NodeProto | None] = {}
    for node in graph.node:
        chain = _product_chain(node, sole, constants) if node.op_type == "MatMulInteger" else None
        if chain is not None:
            fused, absorbed = chain
            replaced[id(node)] = fused
            replaced.update(dict.fromkeys(map(id, absorbed)))
    kept = [replaced.get(id(n), n) for n in graph.node]
    del graph.node[:]
    graph.node.extend(n for n in kept if n is not None)


def _product_chain(
    node: NodeProto, sole: Callable[[str, str], NodeProto | None], constants: dict[str, object]
) -> tuple[NodeProto, list[NodeProto]] | None:
    """The ``MatMulIntegerToFloat`` replacing ``node`` and the nodes it absorbs; None when the
    nodes after it do not have the expected shape."""
    from onnx import helper

    cast = sole(node.output[0], "Cast")
    scale_mul = sole(cast.output[0], "Mul") if cast is not None else None
    if cast is None or scale_mul is None:
        return None
    scale = next(i for i in scale_mul.input if i != cast.output[0])
    if scale not in constants:
        return None
    last, bias = scale_mul, ""
    add = sole(scale_mul.output[0], "Add")
    if add is not None:
        other = next(i for i in add.input if i != scale_mul.output[0])
        if other in constants and len(getattr(constants[other], "dims", ())) == 1:
            last, bias = add, other
    a, b, *zeros = node.input
    zero_a, zero_b = [*zeros, "", ""][:2]
    inputs = [a, b, scale, _ONE, zero_a, zero_b, bias]
    while inputs[-1] == "":
        inputs.pop()
    fused = helper.make_node("MatMulIntegerToFloat", inputs, [last.output[0]],
                             name=f"{node.name}_to_float", domain="com.microsoft")  # fmt: skip
    return fused, [cast, scale_mul, last]


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantiser's per-tensor notes, which it logs on the root logger itself. A
    root-logger filter sees only records logged there directly, so other loggers' records
    (which reach the root's handlers by propagation) pass untouched."""

    def keep(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
