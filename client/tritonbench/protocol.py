"""The Triton side of the benchmark client: control-plane calls (health, metadata, config, repository,
shared memory) and the inference request, built and decoded by tritonclient."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any
from urllib.parse import quote

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from .transport import (
    DROPPED,
    EXIT_USAGE,
    SOCKET_TIMEOUT,
    ClientError,
    Connection,
    RequestFailed,
    _reason,
    request_head,
)

# Both static methods, same arguments, in tritonclient 2.21.0 (the 22.04 SDK container's; upstream
# triton-inference-server/client, tag r22.04, src/python/library/tritonclient/http/__init__.py) and in
# 2.51.0 (tritonclient/http/_client.py; it adds a trailing parameters=None).
build_request_body = httpclient.InferenceServerClient.generate_request_body


parse_response_body = httpclient.InferenceServerClient.parse_response_body


DEFAULT_CLASSES = 1000


DEFAULT_IMAGE_DIMS = (224, 224, 3)


class Server:
    """Triton's health, metadata, repository and shared-memory endpoints, through tritonclient's client."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.url = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        """tritonclient's InferenceServerClient, made on first use (again after close())."""
        if self._client is None:
            self._client = httpclient.InferenceServerClient(
                self.url, connection_timeout=self.timeout, network_timeout=self.timeout)
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a client whose server is gone
                client.close()

    def check_ready(self) -> None:
        try:
            live = self.client.is_server_live()
        except Exception as exc:  # noqa: BLE001 - refused, reset, timed out: all say "cannot reach"
            raise ClientError(f"cannot reach Triton at {self.url}: {_reason(exc)}") from None
        if not live:
            raise ClientError(f"Triton at {self.url} is not live (GET /v2/health/live)")
        if not self._ask(self.client.is_server_ready):
            raise ClientError(f"Triton at {self.url} is live but not ready (GET /v2/health/ready)")

    def _ask(self, call: Any, *args: Any) -> Any:
        """A control call whose failure (other than an error the server answered) is one line, exit 1."""
        try:
            return call(*args)
        except InferenceServerException:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ClientError(f"Triton at {self.url} stopped answering: {_reason(exc)}") from None

    def repository(self) -> list[dict[str, Any]]:
        try:
            index = self.client.get_model_repository_index()
        except Exception:  # noqa: BLE001 - only used to explain another failure
            return []
        return index if isinstance(index, list) else []

    def model(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's metadata and config; a clear error naming what the repository holds otherwise."""
        try:
            meta = self._ask(self.client.get_model_metadata, name)
        except InferenceServerException:
            meta = None
        if not isinstance(meta, dict):
            index = self.repository()
            entry = next((m for m in index if m.get("name") == name), None)
            if entry is not None:
                reason = entry.get("reason") or ""
                raise ClientError(
                    f"model '{name}' is in the repository of {self.url} but {entry.get('state', 'not loaded')}"
                    + (f": {reason}" if reason else "")
                )
            names = ", ".join(
                f"{m.get('name')} ({m.get('state', '?')})" for m in sorted(index, key=lambda m: str(m.get("name")))
            )
            raise ClientError(
                f"unknown model '{name}' on {self.url}; the repository holds: {names or 'no models'}", EXIT_USAGE
            )
        try:
            ready = self._ask(self.client.is_model_ready, name)
        except InferenceServerException:
            ready = False
        if not ready:
            raise ClientError(f"model '{name}' on {self.url} is not ready (GET /v2/models/{name}/ready)")
        try:
            config = self._ask(self.client.get_model_config, name)
        except InferenceServerException:
            config = {}
        return meta, config if isinstance(config, dict) else {}


def numeric_dtype(datatype: str) -> Any:
    """The numpy type of a numeric Triton datatype (tritonclient's mapping); None for others (BYTES, BF16...)."""
    np_type = triton_to_np_dtype(datatype)
    if np_type is None or np_type is np.object_ or np_to_triton_dtype(np_type) != datatype:
        return None
    return np_type


def request_parts(host: str, port: int, model: str, inputs: list[Any], outputs: list[Any]) -> list[memoryview]:
    """One inference request, head and body, as tritonclient builds its body."""
    body, json_size = build_request_body(inputs, outputs=outputs)
    body = body.encode() if isinstance(body, str) else body  # 2.21 gives a JSON-only body as str
    # The binary tensor extension: the JSON header's length in Inference-Header-Content-Length, the
    # body application/octet-stream; a body that is all JSON is application/json without it.
    headers = {"Content-Length": str(len(body))}
    if json_size is not None:
        headers["Content-Type"] = "application/octet-stream"
        headers["Inference-Header-Content-Length"] = str(json_size)
    else:
        headers["Content-Type"] = "application/json"
    head = request_head(host, port, f"/v2/models/{quote(model, safe='')}/infer", headers)
    return [memoryview(head), memoryview(body)]


class Inference:
    """The request, built once by tritonclient; each answer decoded by tritonclient, then checked."""

    def __init__(self, model: str, input_name: str, output_name: str, images: np.ndarray,
                 datatype: str, classes: int, host: str, port: int, region: str | None = None) -> None:
        self.output_name = output_name
        self.batch = int(images.shape[0])
        self.classes = classes
        tensor = httpclient.InferInput(input_name, list(images.shape), datatype)
        if region is not None:  # the server reads the images from a registered shared-memory region
            tensor.set_shared_memory(region, int(images.nbytes))
        else:
            tensor.set_data_from_numpy(np.ascontiguousarray(images), binary_data=True)
        output = httpclient.InferRequestedOutput(output_name, binary_data=True)
        self.parts = request_parts(host, port, model, [tensor], [output])

    def run(self, conn: Connection) -> np.ndarray:
        """One inference; the output tensor, checked; RequestFailed if the answer is wrong in any way.

        A connection the server closed while idle is reopened and the request sent once more
        (inference requests are idempotent here).
        """
        result = self.answer(conn)
        try:
            output = result.get_output(self.output_name)
            tensor = result.as_numpy(self.output_name) if output is not None else None
        except Exception as exc:  # noqa: BLE001 - whatever the answer did to the parser
            raise RequestFailed("bad response", f"cannot decode the answer: {type(exc).__name__}: {exc}") from None
        if output is None or tensor is None:
            raise RequestFailed("bad output", f"no output named '{self.output_name}' in the response")
        return self.check(output, tensor)

    def answer(self, conn: Connection) -> Any:
        """The request sent, its answer decoded by tritonclient (an InferResult); RequestFailed otherwise."""
        for attempt in (0, 1):
            reused = conn.sock is not None
            try:
                status, headers, data = conn.exchange(self.parts)
                break
            except (SOCKET_TIMEOUT, BlockingIOError) as exc:  # connecting; SO_SNDTIMEO/SO_RCVTIMEO: EAGAIN
                conn.close()
                raise RequestFailed("timeout", f"no progress for {conn.timeout:g} s") from exc
            except DROPPED as exc:
                conn.close()
                if not reused or attempt:
                    raise RequestFailed("connection", f"server closed the connection ({_reason(exc)})") from exc
            except OSError as exc:
                conn.close()
                raise RequestFailed("connection", _reason(exc)) from exc
            except (ValueError, IndexError, UnicodeError) as exc:
                conn.close()
                raise RequestFailed("protocol", f"malformed HTTP response: {exc}") from exc
        length = headers.get("inference-header-content-length")
        encoding = headers.get("content-encoding")
        if status != 200:
            raise RequestFailed(f"http {status}", _error_text(data, encoding))
        try:
            return parse_response_body(data, header_length=int(length) if length else None,
                                       content_encoding=encoding)
        except Exception as exc:  # noqa: BLE001 - whatever the answer did to the parser
            raise RequestFailed("bad response", f"cannot decode the answer: {type(exc).__name__}: {exc}") from None

    def check(self, output: dict[str, Any], result: np.ndarray) -> np.ndarray:
        expected = [self.batch, self.classes]
        if output.get("datatype") != "FP32":
            raise RequestFailed("bad output", f"output datatype {output.get('datatype')}, expected FP32")
        if list(result.shape) != expected:
            raise RequestFailed("bad output", f"output shape {list(result.shape)}, expected {expected}")
        if not np.isfinite(result).all():
            bad = int(result.size - np.count_nonzero(np.isfinite(result)))
            raise RequestFailed("bad output", f"{bad} non-finite values in the output")
        return result


class TensorInference(Inference):
    """A request of any model's tensors (from an input-data file, perf_analyzer's format); every output the
    model declares is checked: present, of its data type and shape, finite where it is a float."""

    def __init__(self, model: str, tensors: list[tuple[str, np.ndarray, str]],
                 outputs: list[tuple[str, str, list[int]]], batch: int, host: str, port: int) -> None:
        self.batch = batch
        self.outputs = outputs
        self.output_name = outputs[0][0] if outputs else ""
        inputs = []
        for name, array, datatype in tensors:
            tensor = httpclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(np.ascontiguousarray(array), binary_data=True)
            inputs.append(tensor)
        wanted = [httpclient.InferRequestedOutput(name, binary_data=True) for name, _, _ in outputs]
        self.parts = request_parts(host, port, model, inputs, wanted)

    def run(self, conn: Connection) -> np.ndarray:
        result = self.answer(conn)
        first = np.zeros(0)
        for i, (name, datatype, shape) in enumerate(self.outputs):
            try:
                output = result.get_output(name)
                tensor = result.as_numpy(name) if output is not None else None
            except Exception as exc:  # noqa: BLE001 - whatever the answer did to the parser
                raise RequestFailed("bad response", f"cannot decode output '{name}': {type(exc).__name__}: {exc}"
                                    ) from None
            if output is None or tensor is None:
                raise RequestFailed("bad output", f"no output named '{name}' in the response")
            if output.get("datatype") != datatype:
                raise RequestFailed("bad output", f"output '{name}' is {output.get('datatype')}, expected {datatype}")
            if list(tensor.shape) != list(shape):
                raise RequestFailed("bad output", f"output '{name}' has shape {list(tensor.shape)}, expected {shape}")
            if tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
                raise RequestFailed("bad output", f"non-finite values in output '{name}'")
            if i == 0:
                first = tensor
        return first


def load_input_data(path: str, inputs: list[dict[str, Any]], max_batch: int,
                    batch: int) -> list[tuple[str, np.ndarray, str]]:
    """The tensors of one request from a perf_analyzer JSON input-data file ({"data": [{NAME: [...] or
    {"content": [...], "shape": [...]} or {"b64": ...}}, ...]}): each entry holds every input for one batch
    element (a batching model: `batch` entries are stacked, taken round-robin) or the whole tensor (a model
    of fixed shape, max_batch_size 0)."""
    import base64
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        entries = doc["data"]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ValueError("\"data\" must be a list of objects, one per request")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"--input_data {path}: not perf_analyzer's JSON input data ({exc})", EXIT_USAGE) from None
    count = batch if max_batch > 0 else 1
    tensors = []
    for spec in inputs:
        name, datatype = str(spec.get("name")), str(spec.get("datatype"))
        np_type = numeric_dtype(datatype)
        if np_type is None:
            raise ClientError(f"input '{name}' is {datatype}; this client sends numeric tensors only", EXIT_USAGE)
        dims = [int(d) for d in spec.get("shape", [])]
        item_dims = dims[1:] if max_batch > 0 else dims
        items = []
        for k in range(count):
            value = entries[k % len(entries)].get(name)
            if value is None:
                raise ClientError(f"--input_data {path}: entry {k % len(entries)} has no input '{name}'", EXIT_USAGE)
            shape = item_dims
            if isinstance(value, dict) and "b64" in value:
                array = np.frombuffer(base64.b64decode(value["b64"]), dtype=np.dtype(np_type).newbyteorder("<"))
            else:
                if isinstance(value, dict):
                    shape = [int(d) for d in value.get("shape", item_dims)]
                    value = value.get("content")
                array = np.asarray(value, dtype=np_type)
            if any(d < 0 for d in shape) or array.size != int(np.prod(shape)):
                raise ClientError(f"--input_data {path}: input '{name}' has {array.size} values, the model takes "
                                  f"{shape} per {'item' if max_batch > 0 else 'request'}", EXIT_USAGE)
            items.append(array.astype(np_type, copy=False).reshape(shape))
        tensor = np.stack(items) if max_batch > 0 else items[0]
        tensors.append((name, tensor, datatype))
    return tensors


def _error_text(body: bytes, encoding: str | None) -> str:
    """The server's error message: the "error" field of its JSON answer, decoded by tritonclient."""
    try:
        answer = parse_response_body(body, content_encoding=encoding).get_response()
        return str(answer.get("error", answer))
    except Exception:  # noqa: BLE001 - not JSON: show the text itself
        return body[:2000].decode("utf-8", "replace").strip() or "(empty body)"


class SharedInput:
    """The input images in a POSIX shared-memory object that the server registers and reads directly.

    Only for a client on the server's host sharing its /dev/shm (docker: --ipc host on both
    containers): requests then carry a reference, not 9.6 MB of tensor, so neither the client nor
    the server copies the images through TCP. Removed again at exit (registration and object).
    Made, filled and removed by tritonclient.utils.shared_memory (in 2.21 and 2.51 alike).
    """

    def __init__(self, server: Server, images: np.ndarray) -> None:
        import tritonclient.utils.shared_memory as shm  # loads a C library: only when asked for

        self.shm = shm
        self.server = server
        self.name = f"infprov-input-{os.getpid()}"
        self.path = f"/dev/shm/{self.name}"
        self.registered = False
        self.handle: Any = None
        try:
            self.handle = shm.create_shared_memory_region(self.name, f"/{self.name}", int(images.nbytes))
            shm.set_shared_memory_region(self.handle, [np.ascontiguousarray(images)])
        except Exception as exc:  # noqa: BLE001 - SharedMemoryException, or /dev/shm full
            self.close()
            raise ClientError(f"cannot create {self.path} for --shared_memory: {exc}") from None
        try:
            server.client.register_system_shared_memory(self.name, f"/{self.name}", int(images.nbytes))
        except InferenceServerException as exc:
            self.close()
            raise ClientError(
                f"Triton at {server.url} cannot use shared memory {self.path}: {_reason(exc)}; the server must "
                f"share this client's /dev/shm (same host; docker --ipc host), or drop --shared_memory"
            ) from None
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise ClientError(f"cannot register shared memory with Triton at {server.url}: {_reason(exc)}") from None
        finally:
            server.close()  # its connection would sit idle through the run
        self.registered = True

    def close(self) -> None:
        if self.registered:
            self.registered = False
            try:
                self.server.client.unregister_system_shared_memory(self.name)
            except Exception:  # noqa: BLE001, S110 - the server is gone: nothing left registered
                pass
            finally:
                self.server.close()
        handle, self.handle = self.handle, None
        if handle is not None:
            with contextlib.suppress(Exception):  # removed below if still there
                self.shm.destroy_shared_memory_region(handle)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def input_spec(
    meta: dict[str, Any], config: dict[str, Any], args: argparse.Namespace
) -> tuple[str, tuple[int, ...], int]:
    """(datatype, per-image dims, classes) from the model's metadata; refuses names it does not have."""
    inputs = {i.get("name"): i for i in meta.get("inputs", [])}
    outputs = {o.get("name"): o for o in meta.get("outputs", [])}
    if inputs and args.input_name not in inputs:
        raise ClientError(f"model '{args.model_name}' has no input '{args.input_name}'; its inputs: "
                          f"{', '.join(map(str, inputs))} (use --input_name)", EXIT_USAGE)
    if outputs and args.output_name not in outputs:
        raise ClientError(f"model '{args.model_name}' has no output '{args.output_name}'; its outputs: "
                          f"{', '.join(map(str, outputs))} (use --output_name)", EXIT_USAGE)
    max_batch = int(config.get("max_batch_size", 0) or 0)
    if max_batch and args.batch_size > max_batch:
        raise ClientError(f"batch size {args.batch_size} is above the model's max_batch_size {max_batch}", EXIT_USAGE)
    spec = inputs.get(args.input_name, {})
    datatype = str(spec.get("datatype", "FP32"))
    if numeric_dtype(datatype) is None:
        raise ClientError(f"input '{args.input_name}' is {datatype}; this client sends numeric tensors only",
                          EXIT_USAGE)
    shape = [int(d) for d in spec.get("shape", [])][1:]
    dims = tuple(shape) if shape and all(d > 0 for d in shape) else DEFAULT_IMAGE_DIMS
    out_shape = [int(d) for d in outputs.get(args.output_name, {}).get("shape", [])][1:]
    classes = out_shape[0] if len(out_shape) == 1 and out_shape[0] > 0 else DEFAULT_CLASSES
    return datatype, dims, classes


def make_images(batch: int, dims: tuple[int, ...], datatype: str, seed: int) -> np.ndarray:
    """Random images in [0, 1) (as the seed sent), generated once and shared by all workers."""
    rng = np.random.default_rng(seed)
    data = rng.random((batch, *dims), dtype=np.float32)
    return data.astype(numeric_dtype(datatype), copy=False)
