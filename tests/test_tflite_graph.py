"""mai_sr.tflite.graph: the flatbuffer reader, checked against LiteRT's own view of the
same files (an independent parser) and against hand-counted MACs."""

import math
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tflite_factory
from mai_sr.errors import MaiSrError
from mai_sr.tflite.graph import read_graph

H, W, CH = 24, 32, 8  # tflite_factory defaults: LR shape and hidden channels


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("graph")
    return {
        "int8": tflite_factory.prebuilt("int8", d / "int8.tflite"),
        "float": tflite_factory.prebuilt("float", d / "float.tflite"),
        "dynamic": tflite_factory.prebuilt("dynamic", d / "dyn.tflite"),
    }


@pytest.mark.parametrize("kind", ["int8", "float", "dynamic"])
def test_tensors_and_ops_match_litert(models, kind):
    graph = read_graph(models[kind])
    interp = Interpreter(model_path=str(models[kind]))
    details = {d["index"]: d for d in interp.get_tensor_details()}
    for t in graph.tensors:
        if t.index not in details:  # LiteRT may drop unused tensors; ours keeps all
            continue
        d = details[t.index]
        assert t.name == d["name"]
        assert list(t.shape) == list(d["shape"])
        assert list(t.shape_signature) == list(d["shape_signature"])
        assert t.dtype == np.dtype(d["dtype"]).name
        q = d["quantization_parameters"]
        assert np.allclose(t.quantization.scales, q["scales"])
        assert list(t.quantization.zero_points) == list(q["zero_points"])
        if t.quantization.per_channel:
            assert t.quantization.quantized_dimension == q["quantized_dimension"]
    ops = interp._get_ops_details()
    assert [op.type for op in graph.ops] == [o["op_name"] for o in ops]
    for op, o in zip(graph.ops, ops):
        assert list(op.inputs) == list(o["inputs"])
        assert list(op.outputs) == list(o["outputs"])
    assert list(graph.inputs) == [d["index"] for d in interp.get_input_details()]
    assert list(graph.outputs) == [d["index"] for d in interp.get_output_details()]


def test_int8_graph_structure(models):
    graph = read_graph(models["int8"])
    assert [op.type for op in graph.ops] == [
        "QUANTIZE", "CONV_2D", "CONV_2D", "CONV_2D", "ADD", "MINIMUM", "RELU",
        "DEPTH_TO_SPACE", "QUANTIZE"]
    convs = [op for op in graph.ops if op.type == "CONV_2D"]
    assert [op.kernel for op in convs] == [(3, 3), (3, 3), (1, 1)]
    assert all(op.stride == (1, 1) and op.groups == 1 for op in convs)
    assert [op.activation for op in convs] == ["RELU", "NONE", "NONE"]
    assert convs[0].options["padding"] == "SAME" and convs[2].options["padding"] == "VALID"
    d2s = next(op for op in graph.ops if op.type == "DEPTH_TO_SPACE")
    assert d2s.options == {"block_size": 3}
    (inp,), (out,) = graph.input_tensors, graph.output_tensors
    assert (inp.dtype, inp.shape) == ("uint8", (1, H, W, 3))
    assert (out.dtype, out.shape) == ("uint8", (1, 3 * H, 3 * W, 3))
    for op, cout in zip(convs, (CH, 27, 27)):
        weights = graph.tensors[op.inputs[1]]
        q = weights.quantization
        assert weights.dtype == "int8" and weights.is_constant
        assert q.per_channel and len(q.scales) == cout and q.quantized_dimension == 0
        assert q.symmetric
    # every constant byte is one buffer: int8 weights + int32 biases + the scalar clip bound
    assert graph.weight_bytes == sum(t.data_bytes for t in graph.tensors if t.is_constant)
    assert graph.weight_bytes >= 9 * 3 * CH + 9 * CH * 27 + 3 * 27 + 4 * (CH + 27 + 27)


def test_anchor_weights_are_the_nearest_kernel(models):
    """The 1x1 anchor conv copies input channel k % 3 into output channel k (DCR order)."""
    graph = read_graph(models["int8"])
    anchor = next(op for op in graph.ops if op.kernel == (1, 1))
    t = graph.tensors[anchor.inputs[1]]
    real = graph.constant_data(t.index).astype(np.float64)[:, 0, 0, :] * \
        np.array(t.quantization.scales)[:, None]
    expected = np.zeros((27, 3))
    expected[np.arange(27), np.arange(27) % 3] = 1.0
    np.testing.assert_allclose(real, expected, atol=1e-6)


def test_macs_and_shapes(models):
    graph = read_graph(models["int8"])
    expected = H * W * (9 * 3 * CH + 9 * CH * 27 + 3 * 27)  # two 3x3 convs + the 1x1 anchor
    assert graph.total_macs() == expected
    # twice the input side: four times the work, output 3x the input
    assert graph.total_macs((2 * H, 2 * W)) == 4 * expected
    shapes = graph.shapes((2 * H, 2 * W))
    assert shapes[graph.outputs[0]] == (1, 6 * H, 6 * W, 3)
    add = next(op for op in graph.ops if op.type == "ADD")
    cost = graph.op_cost(add, shapes)
    assert cost.macs == 0 and cost.output_elements == 4 * H * W * 27
    assert cost.input_bytes == 2 * 4 * H * W * 27 and cost.output_bytes == 4 * H * W * 27


def test_dynamic_graph_shapes_follow_the_fixed_graph(models):
    dyn, fixed = read_graph(models["dynamic"]), read_graph(models["int8"])
    assert dyn.is_dynamic and not fixed.is_dynamic
    assert dyn.input_tensors[0].shape_signature == (1, -1, -1, 3)
    with pytest.raises(MaiSrError, match="dynamic input shape"):
        dyn.shapes()
    dyn_shapes = dyn.shapes((H, W))
    for a, b in zip(dyn.ops, fixed.ops):
        assert [dyn_shapes[i] for i in a.outputs] == [fixed.tensors[i].shape for i in b.outputs]
    assert dyn.total_macs((H, W)) == fixed.total_macs()


def _one_line_error(path, match):
    with pytest.raises(MaiSrError) as info:
        read_graph(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert match in message
    return message


def test_bad_files_give_one_line_errors(models, tmp_path):
    data = models["int8"].read_bytes()
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    _one_line_error(empty, "empty file")
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a flatbuffer, just a text file with enough bytes\n")
    _one_line_error(text, "not a TFLite model")
    tiny = tmp_path / "tiny.tflite"
    tiny.write_bytes(b"TFL")
    _one_line_error(tiny, "too short")
    for fraction in (0.02, 0.5, 0.9, 0.99):
        cut = tmp_path / f"cut{fraction}.tflite"
        cut.write_bytes(data[: math.floor(len(data) * fraction)])
        _one_line_error(cut, "truncated or corrupt")
    _one_line_error(tmp_path / "missing.tflite", "no such file")


# ------------------------------------------------------------------ op codes


def _zero_deprecated_codes(data: bytes) -> tuple[bytes, int]:
    """`data` with every OperatorCode's `deprecated_builtin_code` set to 0 in place, the op
    left in `builtin_code` only: how Google's AI Edge Quantizer writes its files. Returns the
    bytes and how many codes held the op in both fields."""
    import flatbuffers
    import tflite

    out = bytearray(data)
    model = tflite.Model.GetRootAs(out, 0)
    zeroed = 0
    for i in range(model.OperatorCodesLength()):
        table = model.OperatorCodes(i)._tab
        deprecated, builtin = table.Offset(4), table.Offset(10)
        if deprecated and builtin:
            assert table.Get(flatbuffers.number_types.Int32Flags, builtin + table.Pos) > 0
            flatbuffers.encode.Write(flatbuffers.packer.int8, out, deprecated + table.Pos, 0)
            zeroed += 1
    return bytes(out), zeroed


def test_op_names_when_deprecated_builtin_code_is_zero(tmp_path, capsys):
    """A shipped model rewritten as the AI Edge Quantizer writes op codes: LiteRT (which
    reads the larger of the two fields, as the schema says) still runs it to the same
    output, and the reader and `mai-sr lint` name every op as LiteRT does."""
    from mai_sr.cli import main

    original = (Path(__file__).resolve().parents[1] / "mai_sr" / "pretrained"
                / "ncnet.mai_builtin.tflite")
    data, zeroed = _zero_deprecated_codes(original.read_bytes())
    assert zeroed >= 4  # QUANTIZE, CONV_2D, DEPTH_TO_SPACE, MINIMUM...; ADD (0) has neither
    patched = tmp_path / "ai_edge_style.tflite"
    patched.write_bytes(data)
    import tflite

    codes = tflite.Model.GetRootAs(data, 0)
    assert all(codes.OperatorCodes(i).DeprecatedBuiltinCode() == 0
               for i in range(codes.OperatorCodesLength()))

    interp = Interpreter(model_path=str(patched))
    litert_ops = [d["op_name"] for d in interp._get_ops_details()]
    assert [op.type for op in read_graph(patched).ops] == litert_ops
    assert [op.type for op in read_graph(original).ops] == litert_ops
    assert {"QUANTIZE", "CONV_2D", "DEPTH_TO_SPACE"} <= set(litert_ops)

    lr = np.random.default_rng(3).integers(0, 256, (1, 360, 640, 3), dtype=np.uint8)
    outputs = []
    for path in (original, patched):
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], lr)
        it.invoke()
        outputs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert np.array_equal(*outputs)

    assert main(["lint", str(patched), "--wide"]) == 0
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()[1:]
            if line[:1].isdigit()]
    assert [name for _, name in rows] == litert_ops
