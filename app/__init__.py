"""The Streamlit app layer: ``services`` (typed, cached reads), ``components`` (rendering),
``state`` (page state in the URL) and the table of pages the entrypoint registers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to the entrypoint
    title: str
    icon: str
    url_path: str
    public: bool = False  # shown to everyone; staff pages show others why they cannot see them

    @property
    def exists(self) -> bool:
        return (PROJECT_ROOT / self.path).is_file()


RISK_MAP: Final = PageSpec(
    "views/1_risk_map.py", "Tomorrow's risk map", ":material/map:", "risk-map"
)
DRILLDOWN: Final = PageSpec(
    "views/2_hex_drilldown.py", "Hex drill-down", ":material/hexagon:", "hex"
)
BRIEFING: Final = PageSpec(
    "views/7_public_briefing.py", "Public briefing", ":material/campaign:", "briefing", public=True
)

# Navigation order; adding a page is one line. Files that do not exist yet are skipped.
PAGES: Final = (
    RISK_MAP,
    DRILLDOWN,
    PageSpec("views/3_what_if.py", "What-if weather", ":material/rainy:", "what-if"),
    PageSpec(
        "views/4_deployment_planner.py", "Deployment planner", ":material/local_police:", "planner"
    ),
    PageSpec("views/5_model_health.py", "Model health", ":material/monitoring:", "model-health"),
    PageSpec("views/6_data_health.py", "Data health", ":material/database:", "data-health"),
    BRIEFING,
)


def registered_pages() -> list[PageSpec]:
    """The pages with a URL: those whose file exists. Who sees what is ``app.access``'s."""
    return [page for page in PAGES if page.exists]
