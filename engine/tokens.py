"""How the model's own tokenizer splits a prompt, and what falls outside its window.

Reads the tokenizer files only (``vocab.json`` + ``merges.txt``, or ``tokenizer.json``)
with the ``tokenizers`` package: no torch, no transformers, no model load, so the panel
can ask while the artist types. Tokenizers are cached per folder.

CLIP text encoders see a window of ``model_max_length`` tokens (77): a start token,
75 prompt tokens and an end token. diffusers cuts the prompt there; words past it are
ignored. SDXL has two text encoders, each with its own tokenizer folder.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORD_END = "</w>"  # CLIP's BPE marks the last piece of every word with this suffix
DEFAULT_WINDOW = 77
SPECIAL_TOKENS = 2  # <|startoftext|> and <|endoftext|> take two places of the window
# CLIP's pre-tokenizer (transformers' CLIPTokenizer / CLIPConverter): words, single digits, punctuation runs.
_CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
TOKENIZER_FOLDERS = ("tokenizer", "tokenizer_2")  # diffusers' pipeline layout (SDXL has both)


@dataclass
class Word:
    """One prompt word (or punctuation run) and the positions of its tokens in the prompt (0-based)."""

    text: str
    tokens: list[int]


@dataclass
class TokenCount:
    """A prompt as one tokenizer sees it.

    ``tokens``: the BPE pieces; ``window``: prompt tokens the encoder reads (75 for CLIP);
    ``ignored``: the words that fall (even partly) outside the window.
    """

    tokens: list[str]
    words: list[Word]
    window: int
    ignored: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.tokens)

    @property
    def over(self) -> bool:
        return self.count > self.window


def _byte_decoder() -> dict[str, int]:
    """GPT-2/CLIP byte-level alphabet, reversed: printable char -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTES = _byte_decoder()


def token_text(pieces: list[str]) -> str:
    """The text BPE pieces stand for (word-end markers dropped, bytes decoded)."""
    joined = "".join(piece.replace(WORD_END, "") for piece in pieces)
    data = bytes(_BYTES.get(ch, ord("?")) for ch in joined)
    return data.decode("utf-8", errors="replace")


def group_words(pieces: list[str]) -> list[Word]:
    """Consecutive pieces up to and including one that ends a word form one word."""
    words: list[Word] = []
    current: list[int] = []
    for index, piece in enumerate(pieces):
        current.append(index)
        if piece.endswith(WORD_END):
            words.append(Word(token_text([pieces[i] for i in current]), current))
            current = []
    if current:
        words.append(Word(token_text([pieces[i] for i in current]), current))
    return words


def is_word(text: str) -> bool:
    """A word (has a letter or digit), not punctuation."""
    return any(ch.isalnum() for ch in text)


def count_pieces(pieces: list[str], window: int) -> TokenCount:
    words = group_words(pieces)
    ignored = [w.text for w in words if w.tokens[-1] >= window and is_word(w.text)]
    return TokenCount(list(pieces), words, window, ignored)


@functools.lru_cache(maxsize=8)
def _load(folder: str, mtime: float) -> tuple[Any, int]:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    path = Path(folder)
    window = DEFAULT_WINDOW
    config = path / "tokenizer_config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("model_max_length")
        if isinstance(value, int) and 2 < value < 100_000:
            window = value
    if (path / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(path / "tokenizer.json")), window
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    lines = (path / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            unk_token="<|endoftext|>",
            end_of_word_suffix=WORD_END,
            continuing_subword_prefix="",
            fuse_unk=False,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    return tokenizer, window


def is_tokenizer_folder(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )


def count_tokens(folder: str | os.PathLike[str], text: str) -> TokenCount:
    """``text`` as the tokenizer in ``folder`` splits it, against its window (loaded once per folder)."""
    path = Path(folder)
    marker = path / ("tokenizer.json" if (path / "tokenizer.json").is_file() else "vocab.json")
    tokenizer, window = _load(str(path), marker.stat().st_mtime)
    pieces = tokenizer.encode(text, add_special_tokens=False).tokens
    return count_pieces(pieces, window - SPECIAL_TOKENS)


def hub_cache_dir(cache_dir: str | None) -> Path:
    """The Hugging Face hub cache folder (the hub's own rules, without importing it)."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home) / "hub"


def tokenizer_folders(model: str, cache_dir: str | None = None) -> list[Path]:
    """The tokenizer folders of ``model`` already on disk (a diffusers folder or a cached hub repo), else [].

    A single-file checkpoint has no tokenizer beside it: [] (its tokenizer is fetched at load time).
    """
    model = model.strip()
    if not model:
        return []
    root = Path(model).expanduser()
    if not (root / "model_index.json").is_file():
        root = Path()
        if model.count("/") == 1 and not os.path.isabs(model):
            repo = hub_cache_dir(cache_dir) / ("models--" + model.replace("/", "--"))
            ref = repo / "refs" / "main"
            try:
                root = repo / "snapshots" / ref.read_text(encoding="utf-8").strip()
            except OSError:
                return []
    return [root / name for name in TOKENIZER_FOLDERS if is_tokenizer_folder(root / name)]
