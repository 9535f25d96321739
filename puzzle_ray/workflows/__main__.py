"""Ray job entrypoint: `python -m puzzle_ray.workflows CONFIG.yaml [--from STAGE] [--only STAGE] [--dry-run]`."""

from .cli import main

if __name__ == "__main__":
    main()
