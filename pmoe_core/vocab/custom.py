"""Label spaces of datasets that are not one of the seven: built from a dataset spec, carried by the store.

A custom dataset's classes, their vocabulary entries and its domain are written into its store's attributes by
`pmoe convert custom`; every reader of the store registers them here (`register`), so the functions that look a
dataset up by name (`label_spaces.label_space`, `unified.dataset_entries`, `data.recipes.domain_of`) find it
without any file but the store. Registration is per process: a worker that opens the store registers it again.

Class -> vocabulary entry, in this order: an explicit `entry`; else the class name or one of its synonyms equal to an
entry's name or prompt (case, spaces, `-` and `_` ignored); else, when the class gives a `prompt`, a new entry named
after the class with that prompt. A class that matches nothing and gives no prompt is an error (a silent new entry
would hide a typo such as "chiar").
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.vocab.label_spaces import ALIASES, LABEL_SPACES, LabelSpace, _alias_key
from pmoe_core.vocab.unified import VOCABULARY, VocabEntry

DOMAINS = ("indoor", "outdoor")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a store file name and a checkpoint key: plain and lower case
ORIGIN = "custom"


@dataclass(frozen=True)
class ClassSpec:
    """One class as a dataset spec states it (before it is matched to the vocabulary)."""

    name: str
    entry: str | None = None
    synonyms: tuple[str, ...] = ()
    prompt: str | None = None


@dataclass(frozen=True)
class CustomLabelSpace:
    """A custom dataset's label space: the benchmark-style `space`, each class's vocabulary entry, its domain."""

    space: LabelSpace
    entries: tuple[VocabEntry, ...]
    domain: str

    @property
    def dataset(self) -> str:
        return self.space.dataset

    def attrs(self) -> dict[str, Any]:
        """The store attribute `label_space` (see schemas/store.schema.json)."""
        return {"origin": ORIGIN, "domain": self.domain,
                "raw_ids": sorted(self.space.raw_to_name), "raw_classes": [self.space.raw_to_name[r] for r in
                                                                           sorted(self.space.raw_to_name)]}


    def description(self) -> dict[str, Any]:
        """Everything `from_attrs` needs, in the store attributes' shape: what a checkpoint trained on this dataset
        carries (meta `custom_label_spaces`), so predict and route-inspect know the dataset without its store."""
        return {"dataset": self.dataset, "benchmark": self.space.benchmark,
                "classes": [{"name": c, "entry": e.name, "prompt": e.prompt}
                            for c, e in zip(self.space.classes, self.entries)],
                "label_space": self.attrs()}


_REGISTRY: dict[str, CustomLabelSpace] = {}


def _key(text: str) -> str:
    return "".join(ch for ch in text.strip().lower() if ch not in "_- ")


_BY_KEY: dict[str, VocabEntry] = {}
for _e in VOCABULARY:
    _BY_KEY.setdefault(_key(_e.name), _e)
    _BY_KEY.setdefault(_key(_e.prompt), _e)


def check_dataset_name(name: str, source: str | None = None) -> str:
    """A custom dataset name: lower-case identifier, not one of the seven datasets or their aliases."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadInput(f"dataset name {name!r} must be lower-case letters, digits and _ (starting with a letter, "
                       "at most 64)", source)
    if any(_alias_key(alias) == _alias_key(name) for alias in ALIASES):
        raise BadInput(f"dataset name {name!r} is a built-in dataset (or alias); a custom dataset needs its own name",
                       source)
    return name


def match_entry(cls: ClassSpec, domain: str, source: str | None = None) -> VocabEntry:
    """The vocabulary entry of one class (rules in the module docstring)."""
    if cls.entry is not None:
        found = next((e for e in VOCABULARY if e.name == cls.entry), None)
        if found is None:
            close = difflib.get_close_matches(cls.entry, [e.name for e in VOCABULARY], n=3)
            raise BadInput(f"class {cls.name!r}: entry {cls.entry!r} is not in the unified vocabulary"
                           + (f" (close: {', '.join(close)})" if close else " (pmoe vocab all lists them)"), source)
        return found
    for text in (cls.name, *cls.synonyms):
        found = _BY_KEY.get(_key(text))
        if found is not None:
            if cls.prompt is not None:
                raise BadInput(f"class {cls.name!r} matches the vocabulary entry {found.name!r}, so it cannot also "
                               "define a new entry with prompt; drop prompt, or rename the class", source)
            return found
    if cls.prompt is not None:
        new = re.sub(r"[^a-z0-9]+", "_", cls.name.strip().lower()).strip("_")
        if not new:
            raise BadInput(f"class {cls.name!r} cannot name a vocabulary entry (no letters or digits)", source)
        return VocabEntry(new, cls.prompt, (domain,))
    close = difflib.get_close_matches(_key(cls.name), list(_BY_KEY), n=3, cutoff=0.75)
    hint = f"; close entries: {', '.join(sorted({_BY_KEY[c].name for c in close}))}" if close else ""
    raise BadInput(f"class {cls.name!r} matches no unified-vocabulary entry by name or synonym: give entry = "
                   f"\"<entry>\", synonyms, or prompt = \"<text>\" for a new entry{hint}", source)


def build(name: str, domain: str, classes: list[ClassSpec], raw_ids: list[int],
          source: str | None = None) -> CustomLabelSpace:
    """A custom label space from spec parts: class i has raw label id `raw_ids[i]` in the user's files."""
    check_dataset_name(name, source)
    if domain not in DOMAINS:
        raise BadInput(f"domain must be indoor or outdoor, got {domain!r}", source)
    if not classes:
        raise BadInput("a dataset needs at least one class", source)
    seen: dict[str, int] = {}
    for i, cls in enumerate(classes):
        if cls.name in seen:
            raise BadInput(f"class name {cls.name!r} appears twice (classes {seen[cls.name]} and {i})", source)
        seen[cls.name] = i
    entries = tuple(match_entry(cls, domain, source) for cls in classes)
    by_entry: dict[str, str] = {}
    for cls, entry in zip(classes, entries):
        if entry.name in by_entry:  # two classes trained against one text: the head could not tell them apart
            raise BadInput(f"classes {by_entry[entry.name]!r} and {cls.name!r} both map to the vocabulary entry "
                           f"{entry.name!r}; give one of them another entry or its own prompt", source)
        by_entry[entry.name] = cls.name
    space = LabelSpace(dataset=name, benchmark=f"{name}{len(classes)}", classes=tuple(c.name for c in classes),
                       raw_kind=ORIGIN, raw_to_name=dict(zip(raw_ids, (c.name for c in classes))))
    return CustomLabelSpace(space, entries, domain)


def from_attrs(attrs: dict[str, Any], source: str | None = None) -> CustomLabelSpace | None:
    """The custom label space a store's attributes describe, or None for a store of one of the seven."""
    meta = attrs.get("label_space")
    if not isinstance(meta, dict) or meta.get("origin") != ORIGIN:
        return None
    try:
        classes = tuple(str(c["name"]) for c in attrs["classes"])
        domain = str(meta["domain"])
        entries = tuple(VocabEntry(str(c["entry"]), str(c["prompt"]), (domain,)) for c in attrs["classes"])
        raw = dict(zip((int(r) for r in meta.get("raw_ids", [])), (str(c) for c in meta.get("raw_classes", []))))
        space = LabelSpace(dataset=str(attrs["dataset"]), benchmark=str(attrs["benchmark"]), classes=classes,
                           raw_kind=ORIGIN, raw_to_name=raw)
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(f"custom label space attributes are incomplete ({err})", source) from None
    return CustomLabelSpace(space, entries, domain)


def register(custom: CustomLabelSpace, source: str | None = None) -> None:
    """Make a custom label space known to this process; a different space under a registered name is an error."""
    name = custom.dataset
    if name in LABEL_SPACES:
        raise FormatError(f"a custom label space cannot take the built-in name {name!r}", source)
    old = _REGISTRY.get(name)
    if old is not None and (old.space.classes, [e.name for e in old.entries]) != (
            custom.space.classes, [e.name for e in custom.entries]):
        raise FormatError(f"dataset {name!r} is already known with other classes ({', '.join(old.space.classes)}); "
                          "two custom datasets need two names", source)
    if old is None or not old.space.raw_to_name:
        _REGISTRY[name] = custom


def registered(name: str) -> CustomLabelSpace | None:
    """The custom label space registered under exactly `name`, if any."""
    return _REGISTRY.get(name)


def register_from_attrs(attrs: dict[str, Any], source: str | None = None) -> CustomLabelSpace | None:
    """Register the custom label space of a store's attributes (no-op for the seven); returns it."""
    custom = from_attrs(attrs, source)
    if custom is not None:
        register(custom, source)
    return custom


__all__ = [
    "DOMAINS",
    "ClassSpec",
    "CustomLabelSpace",
    "build",
    "check_dataset_name",
    "from_attrs",
    "match_entry",
    "register",
    "register_from_attrs",
    "registered",
]
