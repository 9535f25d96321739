"""The `python_function` loader of puzzle-ray children logged to MLflow (`loader_module: puzzle_ray_pyfunc`).

`publish` logs this file and the `puzzle_ray` package as the model's code (its `code/` folder), which MLflow
puts first on `sys.path` before it imports the loader. So `mlflow.pyfunc.load_model(uri)` and
`mlflow models serve` need only the model's own requirements.txt, not an installed puzzle-ray: the loader
registers the nemotron-nas model with transformers, then hands over to mlflow.transformers' own loader.
"""

from __future__ import annotations


def _load_pyfunc(path, model_config=None):
    import puzzle_ray

    register = getattr(puzzle_ray, "register_auto_classes", None)
    if register is not None:  # (versions that register on import have none)
        register()
    from mlflow.transformers import _load_pyfunc as load_transformers_pyfunc

    return load_transformers_pyfunc(path, model_config) if model_config else load_transformers_pyfunc(path)
