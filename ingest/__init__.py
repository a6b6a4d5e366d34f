"""citytwin ingest: load departments' files safely into a workspace.

Every file is treated as hostile: it is copied into a private directory under names we choose,
its format is checked against its content, archives are inspected before extraction, and all
parsing runs in a child process with memory and time limits and no network. What passes
becomes a new layer version; what does not is refused with a report of every problem.
"""

from ingest._progress import STAGES
from ingest.api import COORDS, ingest_file, ingest_manifest
from ingest.errors import IngestError
from ingest.report import Problem, Report, Severity

__all__ = ["COORDS", "STAGES", "IngestError", "Problem", "Report", "Severity", "ingest_file",
           "ingest_manifest"]
