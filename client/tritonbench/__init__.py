"""Benchmark client for a Triton image classifier over HTTP (infprov); seed-compatible flags and output.

Runs where tritonclient[http] and numpy run (infprov.client.build makes it one file, shipped to hosts;
it runs in the Triton SDK container: tritonclient 2.21.0 on Python 3.8 in 22.04-py3-sdk, 2.51.0 on Python 3.11 in the
sandbox's). tritonclient does the protocol: health, metadata, config, repository index and
shared-memory calls (InferenceServerClient), the inference request (InferInput,
InferRequestedOutput, InferenceServerClient.generate_request_body) and the decoding of every answer
(InferenceServerClient.parse_response_body, InferResult.as_numpy); http.client frames the request.
The request is built once, shared by the workers, and each worker hands it as-is to the kernel over
one kept-alive connection: that is what keeps the client's CPU per request near a bare sender's
(InferenceServerClient.infer() builds the body anew for every request, copying the 9.6 MB input
twice, and its HTTP layer copies it once more). Every answer is checked: shape [batch, classes],
FP32, all values finite. With --shared_memory system the images go through /dev/shm instead
(client on the server's host), placed there by tritonclient.utils.shared_memory.

Exit codes: 0 all responses valid; 1 a failure (wrong or failed responses, server unreachable or not
ready); 2 bad usage or bad input (unknown model, batch size refused, ...); 130 interrupted
(SIGINT/SIGTERM), after printing and saving what was measured so far (json "partial": true).
"""
