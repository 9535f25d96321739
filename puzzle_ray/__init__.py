"""puzzle-ray: Puzzle (distillation-based NAS) and Parallel Context Windows on Ray.

Importing the package registers the heterogeneous `nemotron-nas` model with transformers' Auto classes, so
`AutoModelForCausalLM.from_pretrained(dir)` loads exported children without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .arch import PuzzleConfig, PuzzleForCausalLM, PuzzleModel

__version__ = "0.1.0"

AutoConfig.register(PuzzleConfig.model_type, PuzzleConfig, exist_ok=True)
AutoModel.register(PuzzleConfig, PuzzleModel, exist_ok=True)
AutoModelForCausalLM.register(PuzzleConfig, PuzzleForCausalLM, exist_ok=True)

# mlflow.transformers.load_model resolves the class named in `architectures` on the `transformers` module
# (else it reaches for remote code); exported children name DeciLMForCausalLM, in-memory ones PuzzleForCausalLM.
# (Imported here, not at the top: importing the model code can replace the lazy `transformers` module object.)
import transformers  # noqa: E402

for _name in ("DeciLMForCausalLM", "PuzzleForCausalLM"):
    setattr(transformers, _name, PuzzleForCausalLM)
