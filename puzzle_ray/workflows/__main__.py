"""Ray job entrypoint: `python -m puzzle_ray.workflows CONFIG.yaml [KEY=VALUE ...] [--from STAGE] [--only STAGE]
[--until STAGE] [--dry-run] [--print-config]`, the same command and overrides as `puzzle-ray run`."""

from .cli import main

if __name__ == "__main__":
    main()
