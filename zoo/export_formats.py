"""The writers of `zoo export`, one per format: a serving graph -> a SavedModel, LiteRT or ONNX
file in float32, float16 or int8 (the table in zoo/export.py). int8 quantizes what feeds a
weighted op (conv, dense, LSTM) and keeps the `float_tail` after the last one and the image
resize (zoo.data.resize) in float."""
from __future__ import annotations

import warnings

from zoo.data.resize import RESIZE_SCOPE
from zoo.lazy import keras, tf


def input_signature(serving, format: str):
    """The exported input: the serving graph's, with a batch of 1 for LiteRT."""
    shape = (1 if format == "litert" else None, *serving.input_shape[1:])
    return tf.TensorSpec(shape, tf.uint8, name="images")


def _saved_model(serving, path, dtype, calibration):
    serving.export(str(path), format="tf_saved_model", verbose=False,
                   input_signature=[input_signature(serving, "saved_model")])


def _litert(serving, path, dtype, calibration):
    options = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if dtype == "float16":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                   "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS],
                                   "supported_types": [tf.float16]}}
    elif dtype == "int8":
        path.write_bytes(_litert_int8(serving, calibration()))
        return
    serving.export(str(path), format="litert", verbose=False,
                   input_signature=[input_signature(serving, "litert")], **options)


# Ops with weights, where int8 pays off. What feeds none of them (a model's output layers; a
# detector's concatenated box deltas and logits, decode and NMS: pixel coordinates, scores, IoU
# divisions) stays float in int8 exports: one int8 scale for box deltas and logits together cost
# 0.13 mAP, and a quantized IoU division fails on empty boxes.
ONNX_WEIGHTED = {"Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU", "RNN"}
LITERT_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "FULLY_CONNECTED",
                   "BATCH_MATMUL", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM"}


def float_tail(nodes, inputs, outputs, weighted) -> list:
    """The nodes of a graph that feed no weighted node, directly or through others."""
    producer = {t: n for n in nodes for t in outputs(n)}
    feeding, stack = set(), [n for n in nodes if weighted(n)]
    while stack:
        n = stack.pop()
        if id(n) not in feeding:
            feeding.add(id(n))
            stack += [producer[t] for t in inputs(n) if t in producer]
    return [n for n in nodes if id(n) not in feeding]


def _litert_int8(serving, inputs) -> bytes:
    """The LiteRT converter's full-integer quantization of everything that feeds a weighted op;
    the `float_tail` and the image resize keep float kernels. Its calibration ranges
    are dropped (the quantizer would otherwise carry one op's range across the ops that share
    scales: concat, gather, reshape)
    and its ops denylisted, through TFLite's `QuantizationDebugger`. The converter is made the
    way Keras' LiteRT export makes it (ExportArchive -> SavedModel -> from_saved_model)."""
    import functools
    import tempfile

    from tensorflow.lite.tools import flatbuffer_utils

    with tempfile.TemporaryDirectory() as saved_model:
        archive = keras.export.ExportArchive()
        archive.track(serving)
        archive.add_endpoint("serve", functools.partial(serving.__call__, training=False),
                             input_signature=[input_signature(serving, "litert")])
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.experimental_enable_resource_variables = True
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in inputs)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([x[None]] for x in inputs[:1]))
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(debugger.calibrated_model))
    names, kinds = [], set()
    for graph in model.subgraphs:
        def kind(op):
            return flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)

        def resize(op):
            return any(RESIZE_SCOPE in graph.tensors[t].name.decode() for t in op.outputs)

        tail = float_tail(graph.operators or [], lambda op: op.inputs, lambda op: op.outputs,
                          lambda op: kind(op) in LITERT_WEIGHTED)
        for op in tail + [op for op in graph.operators or [] if resize(op)]:
            for tensor in op.outputs:
                graph.tensors[tensor].quantization = None
            if len(op.outputs) == 1:  # denylisted by its output's name
                names.append(graph.tensors[op.outputs[0]].name.decode())
            else:  # TOPK_V2, SPLIT, UNPACK, WHILE: by type
                kinds.add(kind(op))
    debugger.calibrated_model = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names,
                                                                     denylisted_ops=sorted(kinds))
    return debugger.get_nondebug_quantized_model()


def _onnx(serving, path, dtype, calibration):
    with warnings.catch_warnings():  # Keras' tf2onnx copy probes `np.object` when imported
        warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
        serving.export(str(path), format="onnx", verbose=False,
                       input_signature=[input_signature(serving, "onnx")])
    if dtype == "float16":
        import onnx
        from onnxconverter_common import float16

        converted = float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
        onnx.save(_float16_casts(converted), str(path))
    elif dtype == "int8":
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self, inputs):
                self.inputs = iter(inputs)

            def get_next(self):
                x = next(self.inputs, None)
                return None if x is None else {"images": x[None]}

        float_path = path.with_name(path.stem + ".float32.onnx")
        path.rename(float_path)
        try:
            graph = onnx.load(str(float_path)).graph
            tail = float_tail(list(graph.node), lambda n: n.input, lambda n: n.output,
                              lambda n: n.op_type in ONNX_WEIGHTED)
            tail += [n for n in graph.node if RESIZE_SCOPE in n.name]  # zoo.data.resize: float (see there)
            quantize_static(str(float_path), str(path), Reader(calibration()), quant_format=QuantFormat.QDQ,
                            per_channel=True, nodes_to_exclude=[n.name for n in tail])
        finally:
            float_path.unlink()


def _float16_casts(model):
    """The converter turns the type of a Cast's float output into float16 but not the Cast's
    `to` (here: the uint8 image cast to float): make the two agree."""
    import onnx

    float16_values = {v.name for v in [*model.graph.value_info, *model.graph.output]
                      if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in float16_values:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                    attribute.i = onnx.TensorProto.FLOAT16
    return model


WRITERS = {"saved_model": _saved_model, "litert": _litert, "onnx": _onnx}
