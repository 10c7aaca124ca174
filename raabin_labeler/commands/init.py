"""``raabin-labeler init PROJECT --images DIR``: make a project over a folder of photos."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.imageio import IMAGE_SUFFIXES
from ..core.project import Project, photo_paths
from ..errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "init", help="make a project over a folder of photos",
        description="Make a labeling project. The photos stay where they are; the project folder "
                    "holds project.json and the annotations.")
    parser.add_argument("project", type=Path, help="the project folder to make")
    parser.add_argument("--images", type=Path, required=True, metavar="DIR",
                        help="folder of smear photos (sub-folders included)")
    parser.add_argument("--name", help="project name (default: the folder's name)")
    parser.add_argument("--experts", nargs="+", metavar="ID", default=[],
                        help="ids of the experts who will label (letters, digits, - _ .)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    images: Path = args.images
    if not images.is_dir():
        raise UserError(f"{images}: " + ("is a file, not a folder of photos" if images.exists()
                                         else "no such folder of photos"))
    if not photo_paths(images):
        raise UserError(f"{images}: no photos here ({', '.join(IMAGE_SUFFIXES)})")
    project = Project.create(args.project, images, name=args.name, experts=args.experts)
    count = len(project.images())
    experts = f", experts {' '.join(project.experts)}" if project.experts else ""
    print(f"made project {project.name!r} in {project.root} over {count} photo(s) in {images}{experts}")
    return 0
