"""``streamlit run`` with the fake Modal client and run store of ``modal_fakes`` installed, for the
browser test of the Modal flow: ``python tests/modal_fake_server.py HUB_DIR DELAY_S STREAMLIT_ARGS...``.

Only the client boundary is replaced (the Modal backend's default client and, when no Hub is
configured, its run store); the page, the job store, the scheduler and the remote body are real."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from modal_fakes import FakeModal, FakeRunStore  # noqa: E402

import reflect_core.jobs.backends.modal as modal_backend  # noqa: E402

fake = FakeModal(FakeRunStore(Path(sys.argv[1])))
fake.dict.delay = float(sys.argv[2])  # seconds per progress publication: time to press Pause mid-run
original_init = modal_backend.ModalBackend.__init__


def init_with_fakes(self, client=None, run_store=None, **options):
    original_init(self, client=client or fake, run_store=run_store or fake.store, **options)
    self.poll_interval_s = 0.5


modal_backend.ModalBackend.__init__ = init_with_fakes

if __name__ == "__main__":
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[3:]]  # "run app.py --server.port ..."
    sys.exit(cli.main())
