"""A source of labelled photographs as a configuration or the command line names it, without reading any file
(``lib.labelled_photographs`` reads them): the configuration layer stays light."""

import dataclasses

from lib.errors import UserError

SOURCE_SEPARATOR = "|"


@dataclasses.dataclass(frozen=True)
class Source:
    """One set of labelled photographs: their files, folder or pattern, their labels', and their masks' (None:
    each FOV is detected, as ``run_prediction.py`` does)."""

    images: str
    labels: str
    masks: str | None = None

    def describe(self) -> str:
        return f"{self.images} (labels {self.labels}{f', masks {self.masks}' if self.masks else ''})"


def parse_sources(text: str, where: str) -> tuple[Source, ...]:
    """``IMAGES | LABELS [| MASKS]``, one source per line: the [photographs] sources of a configuration."""
    sources = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        parts = [part.strip() for part in line.split(SOURCE_SEPARATOR)]
        if len(parts) not in (2, 3) or not all(parts):
            raise UserError(
                f"{where} line '{line}' is not IMAGES | LABELS or IMAGES | LABELS | MASKS; write e.g. "
                "photos/ | labels/ | masks/"
            )
        sources.append(Source(*parts))
    return tuple(sources)
