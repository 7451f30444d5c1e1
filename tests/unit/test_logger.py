"""Logging configuration (text and JSON lines) and per-thread capture of log records."""

import json
import logging
import threading

import pytest

from unified.errors import ValidationError
from unified.logger import CaptureHandler, capture, configure_logging, current_buffer, install_capture, task_logger


@pytest.fixture(autouse=True)
def restore_unified_logger():
    install_capture()
    unified = logging.getLogger("unified")
    saved = (list(unified.handlers), unified.level, unified.propagate)
    yield
    for handler in unified.handlers:
        if handler not in saved[0]:
            handler.close()
    unified.handlers[:], unified.level, unified.propagate = saved


def test_task_logger_is_captured_at_debug_whatever_the_root_level():
    lines = []
    with capture(lines):
        task_logger("t").debug("debug %d", 1)
        task_logger("t").info("info")
    assert [(level, message) for _, level, message in lines] == [("DEBUG", "debug 1"), ("INFO", "info")]


def test_standard_loggers_keep_their_own_level():
    logger = logging.getLogger("tests.logger.levels")
    logger.setLevel(logging.ERROR)
    lines = []
    try:
        with capture(lines):
            logger.warning("dropped by the logger's level")
            logger.error("kept")
    finally:
        logger.setLevel(logging.NOTSET)
    assert [message for _, _, message in lines] == ["kept"]


def test_capture_nests_and_restores():
    outer, inner = [], []
    log = task_logger("nest")
    with capture(outer):
        log.info("a")
        with capture(inner):
            assert current_buffer() is inner
            log.info("b")
        log.info("c")
    assert current_buffer() is None
    assert [m for _, _, m in outer] == ["a", "c"]
    assert [m for _, _, m in inner] == ["b"]


def test_other_threads_are_not_captured():
    lines = []
    with capture(lines):
        other = threading.Thread(target=task_logger("other").info, args=("from another thread",))
        other.start()
        other.join()
        task_logger("mine").info("mine")
    assert [m for _, _, m in lines] == ["mine"]


def test_install_is_idempotent():
    install_capture()
    install_capture()
    assert sum(isinstance(h, CaptureHandler) for h in logging.root.handlers) == 1


def test_no_duplicate_lines_after_configure_logging(tmp_path):
    configure_logging("WARNING", file=str(tmp_path / "log.txt"))
    lines = []
    with capture(lines):
        task_logger("dup").info("once")
        logging.getLogger("unified.engine").warning("also once")
        logging.getLogger("tests.elsewhere").warning("and once")
    assert [m for _, _, m in lines] == ["once", "also once", "and once"]


def test_configure_logging_text_to_a_file_filters_by_level(tmp_path):
    path = tmp_path / "unified.log"
    configure_logging("WARNING", fmt="text", file=str(path))
    task_logger("t").info("below the level")
    logging.getLogger("unified.worker").warning("worker %s stopped", "w1")
    text = path.read_text()
    assert "below the level" not in text
    assert "WARNING" in text and "unified.worker: worker w1 stopped" in text


def test_configure_logging_json_lines(tmp_path):
    path = tmp_path / "unified.jsonl"
    configure_logging("info", fmt="json", file=str(path))
    log = logging.getLogger("unified.engine")
    log.info("run %s started", "r1", extra={"run_id": "r1"})
    try:
        raise RuntimeError("bad")
    except RuntimeError:
        log.exception("run failed")
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "unified.engine"
    assert first["message"] == "run r1 started" and first["run_id"] == "r1"
    assert first["ts"].endswith("Z")
    assert second["level"] == "ERROR" and "RuntimeError: bad" in second["exception"]
    assert not any(key.startswith("_") for key in first)


def test_configure_logging_twice_replaces_its_handler(tmp_path):
    first = configure_logging(file=str(tmp_path / "a.log"))
    second = configure_logging(file=str(tmp_path / "b.log"))
    handlers = logging.getLogger("unified").handlers
    assert second in handlers and first not in handlers


def test_configure_logging_refuses_unknown_options():
    with pytest.raises(ValidationError, match="log level"):
        configure_logging("LOUD")
    with pytest.raises(ValidationError, match="format"):
        configure_logging(fmt="xml")


def test_capture_handler_does_not_hide_last_resort_output(monkeypatch, capsys):
    # with no other handler anywhere, Python prints warnings to stderr; the capture handler must not change that
    capture_handler = next(h for h in logging.root.handlers if isinstance(h, CaptureHandler))
    monkeypatch.setattr(logging.root, "handlers", [capture_handler])
    logging.getLogger("tests.last.resort").warning("still visible")
    assert "still visible" in capsys.readouterr().err


def test_ctx_logger_is_one_logger_per_task_name_not_per_task_instance():
    from unified.task_manager import TaskManager

    def chatty(ctx):
        ctx.logger.info("attempt %d of %s", ctx.attempt, ctx.task_id)

    before = {n for n in logging.root.manager.loggerDict if n.startswith("unified.task.")}
    with TaskManager(max_workers=2) as tm:
        ids = [tm.queue_task(chatty, name="chatty") for _ in range(50)]
        for task_id in ids:
            tm.wait(task_id, timeout=5)
        logs = tm.get_task_logs(ids[-1])
    created = {n for n in logging.root.manager.loggerDict if n.startswith("unified.task.")} - before
    assert created <= {"unified.task.chatty"}, "a logger per task id would grow without bound"
    assert [line["message"] for line in logs] == [f"attempt 1 of {ids[-1]}"]


def test_half_a_surrogate_pair_is_captured_as_its_escape_so_any_store_can_keep_it():
    lines = []
    with capture(lines):
        task_logger("t").info("name %s, and é", "\ud800")
    assert [message for _, _, message in lines] == ["name \\ud800, and é"]
