"""llama.cpp's own `convert_hf_to_gguf.py` on an exported child, with one documented shim for its tokenizer check.

    python benchmarks/llama_cpp_convert.py LLAMA_CPP_DIR MODEL_DIR OUT.gguf

LLAMA_CPP_DIR is a llama.cpp source tree (the `vendor/llama.cpp/` folder of the llama-cpp-python sdist). The
converter's DeciLM path (`conversion/deci.py`, `DeciModel.set_vocab`) only knows the Llama-3 vocabulary
(128,256 tokens) and SentencePiece tokenizers, and stops on any other BPE tokenizer (SmolLM2's 49,152 tokens)
with "Cannot find Llama BPE tokenizer". The shim gives such a tokenizer the converter's generic BPE path
(`_set_vocab_gpt2`, the one its Llama path uses for the same tokenizer); blocks, weights and every other key are
converted by llama.cpp's code unchanged. It lives here, outside the export: the exported folder stays the
published layout, and the shim is a fact about llama.cpp's converter, not about the child.

It runs as its own process because the converter imports the `gguf` package from its own tree (`gguf-py`),
which must not meet the `gguf` that transformers has imported in the caller.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    src, model_dir, out = (Path(a) for a in argv)
    if not (src / "convert_hf_to_gguf.py").is_file():
        sys.exit(f"{src}: no convert_hf_to_gguf.py (give the llama.cpp source tree)")
    sys.path[:0] = [str(src), str(src / "gguf-py")]
    from conversion.deci import DeciModel  # the converter's own class, patched before the converter runs

    llama_path = DeciModel.set_vocab

    def set_vocab(self):
        if self.hparams.get("vocab_size", 128256) == 128256 or (self.dir_model / "tokenizer.model").is_file():
            return llama_path(self)
        return self._set_vocab_gpt2()

    DeciModel.set_vocab = set_vocab
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(out), "--outtype", "f32"]
    runpy.run_path(str(src / "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
