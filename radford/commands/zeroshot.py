"""``radford zeroshot``: classify images with a CLIP model from class names alone (CLIP paper section 3.1).

Each class's prompts (``--templates`` filled with its name) are embedded and averaged into one classifier weight
(prompt ensembling, section 3.1.4); an image goes to the class whose weight is most similar to its embedding. Images
in sub-folders named after classes (``images/red circle/1.png``; ``_`` stands for a space) count towards the accuracy
printed at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from radford.cli import ArgumentParser
from radford.errors import RadfordError

# Generic prompts in the style of the paper's ImageNet ensemble (section 3.1.4).
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
)
BATCH_SIZE = 64


def image_files(sources: Sequence[str]) -> list[Path]:
    """The image files named, and those under the folders named (recursively), in a stable order."""
    from radford.data.shards import IMAGE_EXTENSIONS

    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(p for p in source.rglob("*") if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
        elif source.is_file():
            files.append(source)
        else:
            raise RadfordError(f"--images {source} is neither a file nor a folder")
    if not files:
        raise RadfordError(f"no images in {', '.join(sources)}: looked for {', '.join(IMAGE_EXTENSIONS)}")
    return files


def class_list(names: Sequence[str] | None, file: str | None) -> list[str]:
    if file is not None:
        try:
            names = [line.strip() for line in Path(file).read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as error:
            raise RadfordError(f"cannot read --class_file {file}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise RadfordError(
                f"--class_file {file} is not UTF-8 text: byte {error.start} is 0x{error.object[error.start]:02x}"
            ) from error
    names = list(names or [])
    if len(names) < 2:
        raise RadfordError(
            f"zero-shot classification needs at least two classes (--classes or --class_file), got {names}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RadfordError(f"classes named more than once: {', '.join(repeated)}")
    return names


def main(args: Sequence[str]) -> None:
    """Classify images zero-shot with a CLIP model (.ckpt or Hugging Face folder) from class names and prompts."""
    parser = ArgumentParser(prog="radford zeroshot", description=main.__doc__)
    parser.add_argument("--checkpoint", required=True, help="a radford CLIP .ckpt, or a Hugging Face CLIPModel folder")
    parser.add_argument("--images", nargs="+", required=True, help="image files and folders (searched recursively)")
    parser.add_argument("--classes", nargs="+", help="class names (quote names with spaces)")
    parser.add_argument("--class_file", help="a text file of class names, one a line (instead of --classes)")
    parser.add_argument(
        "--templates",
        nargs="+",
        default=list(DEFAULT_TEMPLATES),
        help="prompts with {} where the class name goes; their embeddings are averaged per class",
    )
    options = parser.parse_args(args)
    classes = class_list(options.classes, options.class_file)
    bad = [t for t in options.templates if t.count("{}") != 1]
    if bad:
        raise RadfordError(f"each template needs one {{}} for the class name: {bad[0]!r} has {bad[0].count('{}')}")
    files = image_files(options.images)

    import torch
    import torch.nn.functional as F

    from radford.checkpoints import load
    from radford.data.pairs import Preprocess
    from radford.data.pixels import DecodeFailures, open_image
    from radford.models.clip import CLIP
    from radford.tokenizers.clip import CLIPTokenizer

    model = load(options.checkpoint)
    if not isinstance(model, CLIP):
        raise RadfordError(f"{options.checkpoint} holds a {type(model).__name__}, not a CLIP model")
    if model.tokenizer is None:
        raise RadfordError(
            f"{options.checkpoint} has no tokenizer to encode the prompts with: a .ckpt records its "
            "data module's, a Hugging Face folder needs vocab.json + merges.txt or tokenizer.json"
        )
    tokenizer = model.tokenizer
    if not isinstance(tokenizer, CLIPTokenizer):
        raise RadfordError(f"{options.checkpoint} records a {type(tokenizer).__name__} tokenizer, not CLIP's")
    # replace, not format: any other brace in a template is text.
    prompts = [template.replace("{}", name) for name in classes for template in options.templates]
    token_ids = tokenizer.tokenize(prompts, model.hparams.context_length)
    weights = model.class_embeddings(token_ids.view(len(classes), len(options.templates), -1))
    preprocess = Preprocess(model.hparams.image_size)
    failures = DecodeFailures(", ".join(options.images), len(files))
    known = {name.replace("_", " "): index for index, name in enumerate(classes)}
    correct = labelled = 0
    for start in range(0, len(files), BATCH_SIZE):
        decoded = {file: failures.attempt(partial(open_image, file)) for file in files[start : start + BATCH_SIZE]}
        batch = [file for file, image in decoded.items() if image is not None]
        if not batch:
            continue
        pixels = torch.stack([preprocess(decoded[file]) for file in batch])
        with torch.no_grad():
            probs = (model.logit_scale.exp() * F.normalize(model.encode_image(pixels), dim=-1) @ weights.T).softmax(-1)
        confidence, predicted = probs.max(-1)
        for file, p, index in zip(batch, confidence.tolist(), predicted.tolist(), strict=True):
            print(f"{file}\t{classes[index]}\t{p:.3f}")
            truth = known.get(file.parent.name.replace("_", " "))
            if truth is not None:
                labelled += 1
                correct += truth == index
    if labelled:
        print(
            f"accuracy {correct / labelled:.4f} on {labelled} labelled images; chance {1 / len(classes):.4f} "
            f"({len(classes)} classes)"
        )
