"""A Streamlit visitor without a browser: Streamlit's own protobuf messages over its websocket
(``/_stcore/stream``), as its front end sends them, for ``bench/load.py``.

``replay`` is one visitor's session: the risk map, the what-if page, one what-if slider moved
(a fragment rerun), the planner, and one of its files exported (fetched from the media URL its
download button carries; the PDF briefing first asked for, a rerun that draws it). Each step is
timed on the client, with what went wrong in it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Common_pb2 import DoubleArray
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from streamlit.util import calc_hash

STEPS = ("risk map", "what-if load", "what-if change", "planner load", "planner export")
STEP_TIMEOUT_S = 300.0  # one step of one session; beyond it the step is an error
SLIDER = "Precipitation (mm)"
EXPORTS = {"csv": "Plan as CSV", "pdf": "Briefing (PDF)"}  # the planner's download buttons
PREPARE_BRIEFING = "Prepare the printable briefing"  # draws the PDF and PNG on request
FAILED_SECTION = "could not be loaded"  # what app.components.frame shows when a service fails
TITLES = {  # a page run that does not show its title was refused or failed
    "risk-map": "Tomorrow's risk map",
    "what-if": "What-if weather",
    "planner": "Deployment planner",
}
FINISHED_OK = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)
NAN = float("nan")


@dataclass
class Step:
    step: str
    seconds: float
    error: str = ""


class ProtocolSession:
    """One visitor as Streamlit's front end speaks to the server, without the front end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the proxy's replica cookie, on an IP
            timeout=aiohttp.ClientTimeout(total=STEP_TIMEOUT_S),
        )
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session_id = ""  # from the server's first message

    async def open(self) -> None:
        async with self.http.get(self.url + "/", ssl=False) as page:  # as a browser: index first
            page.raise_for_status()
        self.ws = await self.http.ws_connect(
            self.url.replace("http", "ws", 1) + "/_stcore/stream",
            protocols=("streamlit",),
            origin=self.url,
            ssl=False,
            max_msg_size=0,
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()

    async def receive(self) -> ForwardMsg:
        assert self.ws is not None
        message = await self.ws.receive()
        if message.type != aiohttp.WSMsgType.BINARY:
            raise ConnectionError(f"the websocket sent {message.type.name}, not a message")
        forward = ForwardMsg.FromString(message.data)
        if forward.WhichOneof("type") == "new_session":
            self.session_id = forward.new_session.initialize.session_id
        return forward

    async def run(
        self, page: str, widgets: list[WidgetState] | None = None, fragment_id: str = ""
    ) -> tuple[float, list[tuple[str, Any, str]], str]:
        """One script run of ``page``: seconds until ``script_finished``, the elements it sent
        (type, element, fragment id) and what went wrong ("" when nothing did)."""
        assert self.ws is not None
        state = ClientState(
            query_string="",
            page_script_hash=calc_hash(page),
            page_name=page,
            fragment_id=fragment_id,
            widget_states=WidgetStates(widgets=widgets or []),
        )
        started = time.perf_counter()
        await self.ws.send_bytes(BackMsg(rerun_script=state).SerializeToString())
        elements: list[tuple[str, Any, str]] = []
        problems: list[str] = []
        while True:
            message = await self.receive()
            kind = message.WhichOneof("type")
            if kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                element = message.delta.new_element
                name = element.WhichOneof("type") or ""
                elements.append((name, getattr(element, name, None), message.delta.fragment_id))
                if name == "exception":
                    problems.append(f"exception {element.exception.type}")
                if name == "alert" and FAILED_SECTION in element.alert.body:
                    problems.append("a section could not be loaded")
            elif kind == "page_not_found":
                problems.append(f"page {page!r} not found")
            elif kind == "script_finished":
                seconds = time.perf_counter() - started
                headings = {e.body for name, e, _ in elements if name == "heading"}
                if not fragment_id and TITLES[page] not in headings:
                    problems.append(f"no {TITLES[page]!r} title (refused?)")
                if message.script_finished not in FINISHED_OK:
                    problems.append(f"script finished with status {message.script_finished}")
                return seconds, elements, "; ".join(problems)

    async def fetch(self, path: str) -> int:
        """Fetch a download button's file (its ready bytes, at the media URL it carries)."""
        if not path:
            raise RuntimeError("the download button carries no file")
        async with self.http.get(self.url + path, ssl=False) as download:
            download.raise_for_status()
            return len(await download.read())


def _element(elements: list[tuple[str, Any, str]], kind: str, label: str) -> tuple[Any, str]:
    for name, element, fragment in elements:
        if name == kind and element.label == label:
            return element, fragment
    raise LookupError(f"no {kind} {label!r} on the page")


async def replay(url: str, visitor: int, export: str) -> list[Step]:
    """One visitor's session: each step timed, with what went wrong in it; a step that raises
    (connection lost, timeout, a widget missing) ends the session."""
    steps: list[Step] = []
    session = ProtocolSession(url)

    async def timed(name: str, step: Any) -> Any:
        try:
            result = await asyncio.wait_for(step, STEP_TIMEOUT_S)
        except Exception as exc:
            steps.append(Step(name, NAN, f"{type(exc).__name__}: {exc}"[:200]))
            raise
        return result

    try:
        await timed("open", session.open())
        seconds, _, error = await timed("risk map", session.run("risk-map"))
        steps.append(Step("risk map", seconds, error))
        seconds, elements, error = await timed("what-if load", session.run("what-if"))
        steps.append(Step("what-if load", seconds, error))
        slider, fragment = _element(elements, "slider", SLIDER)
        low, high, step = slider.min, slider.max, slider.step or 1.0
        notches = max(int((high - low) / step), 1)
        value = low + step * (1 + (7 * visitor) % notches)  # each visitor its own scenario
        moved = WidgetState(id=slider.id, double_array_value=DoubleArray(data=[value]))
        seconds, _, error = await timed(
            "what-if change", session.run("what-if", [moved], fragment_id=fragment)
        )
        steps.append(Step("what-if change", seconds, error))
        seconds, elements, error = await timed("planner load", session.run("planner"))
        steps.append(Step("planner load", seconds, error))
        started = time.perf_counter()
        if export == "pdf":  # the briefing is drawn when asked
            prepare, _ = _element(elements, "button", PREPARE_BRIEFING)
            clicked = WidgetState(id=prepare.id, trigger_value=True)
            _, elements, error = await timed("planner export", session.run("planner", [clicked]))
            if error:
                raise RuntimeError(error)
        button, _ = _element(elements, "download_button", EXPORTS[export])
        size = await timed("planner export", session.fetch(button.url))
        seconds = time.perf_counter() - started
        steps.append(Step("planner export", seconds, "" if size else "an empty file"))
    except Exception as exc:
        if not steps or not steps[-1].error:
            steps.append(Step("session", NAN, f"{type(exc).__name__}: {exc}"[:200]))
    finally:
        await session.close()
    return steps
