"""Read the `BenchmarkResult` protobuf that `benchmark_model --result_file_path=FILE` writes.

Both Android benchmark tools write it: LiteRT's CompiledModel `benchmark_model`
(`litert/tools/benchmark_litert_model.h`, `BenchmarkLoggingListener::OnBenchmarkEnd`) and
TFLite's classic one. The schema is `tensorflow/lite/tools/benchmark/proto/
benchmark_result.proto` (package `tflite.tools.benchmark`, proto2). No maintained package
ships its generated `_pb2` module, so the message classes are built here at run time from a
descriptor written out below, with the `protobuf` runtime doing the decoding; the field
numbers and types are copied from that .proto file and must stay in step with it.
"""

from __future__ import annotations

from functools import lru_cache

from mai_sr.errors import MaiSrError

PROTO_PACKAGE = "tflite.tools.benchmark"

# message -> [(field name, number, type)] from benchmark_result.proto; types are the
# FieldDescriptorProto names (TYPE_FLOAT ...), "message:Name" for a nested message.
BENCHMARK_RESULT_SCHEMA = {
    "LatencyMetrics": [
        ("avg_ms", 1, "float"), ("min_ms", 2, "float"), ("max_ms", 3, "float"),
        ("stddev_ms", 4, "float"), ("median_ms", 5, "float"), ("p5_ms", 6, "float"),
        ("p95_ms", 7, "float"), ("init_ms", 8, "float"), ("first_inference_ms", 9, "float"),
        ("average_warm_up_ms", 10, "float"),
    ],
    "MemoryMetrics": [
        ("init_footprint_kb", 1, "int64"), ("overall_footprint_kb", 2, "int64"),
        ("peak_mem_mb", 3, "float"),
    ],
    "MiscMetrics": [
        ("model_size_mb", 1, "float"), ("num_runs", 2, "int32"), ("num_warmup_runs", 3, "int32"),
        ("model_throughput_in_mb_per_sec", 4, "float"),
    ],
    "BenchmarkResult": [
        ("name", 1, "string"), ("latency_metrics", 2, "message:LatencyMetrics"),
        ("memory_metrics", 3, "message:MemoryMetrics"), ("misc_metrics", 4, "message:MiscMetrics"),
    ],
}


@lru_cache(maxsize=1)
def benchmark_result_class():
    """The `BenchmarkResult` message class, built once in a private descriptor pool (so it
    never clashes with a generated module another package may have registered)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field_type = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="mai_sr/benchmark_result.proto",
                                               package=PROTO_PACKAGE, syntax="proto2")
    for message_name, fields in BENCHMARK_RESULT_SCHEMA.items():
        message = proto.message_type.add(name=message_name)
        for name, number, kind in fields:
            field = message.field.add(name=name, number=number,
                                      label=field_type.LABEL_OPTIONAL)
            if kind.startswith("message:"):
                field.type = field_type.TYPE_MESSAGE
                field.type_name = f".{PROTO_PACKAGE}.{kind.split(':', 1)[1]}"
            else:
                field.type = getattr(field_type, f"TYPE_{kind.upper()}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{PROTO_PACKAGE}.BenchmarkResult"))


def parse_benchmark_result(data: bytes, source: str = "result file") -> dict:
    """The fields a `BenchmarkResult` carries, as {"latency_metrics": {"avg_ms": ...}, ...};
    only fields present on the wire are included."""
    from google.protobuf.message import DecodeError

    message = benchmark_result_class()()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise MaiSrError(f"{source}: not a BenchmarkResult protobuf ({exc})") from None
    out = {}
    for field, value in message.ListFields():
        if field.message_type is not None:
            out[field.name] = {f.name: v for f, v in value.ListFields()}
        else:
            out[field.name] = value
    return out


def serialize_benchmark_result(result: dict) -> bytes:
    """The inverse of `parse_benchmark_result` (used to write test fixtures)."""
    message = benchmark_result_class()()
    for name, value in result.items():
        if isinstance(value, dict):
            for key, item in value.items():
                setattr(getattr(message, name), key, item)
        else:
            setattr(message, name, value)
    return message.SerializeToString()
