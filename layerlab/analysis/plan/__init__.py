"""The shared-base planner: the article's method on paper.

Write down each application's build steps, overlay the step sequences as a
trie, merge identical nodes, and cut the shared trunk into base images at the
branch points (``f1 -> f2 -> ...``), each app ``FROM`` the last base it shares.

>>> plan = ll.plan_bases({"app1": "app1/Dockerfile", "app2": "app2/Dockerfile"},
...                      images={"app1": img1, "app2": img2})   # sizes (optional)
>>> plan.trie          # one row per trie node
>>> plan.dockerfiles   # {"f1": "FROM debian...\\nRUN ...", ..., "app1": "FROM f2\\n..."}
>>> plan.savings       # storage on one host and bytes pulled per image, before/after

Inputs are Dockerfiles (paths or text, parsed with ``dockerfile-parse``) or
:class:`~layerlab.model.Image` objects (steps from their history).

How steps are compared (the trie key):

* whitespace is collapsed, BuildKit's ``# buildkit`` suffix, the legacy
  builder's ``/bin/sh -c #(nop)`` and the ``/bin/sh -c`` of RUN (and the
  ``|N A=1 …`` build-arg prefix) are removed, so a Dockerfile's
  ``RUN apt-get  update`` matches the history's ``RUN /bin/sh -c apt-get update # buildkit``;
* by effect (``by_effect=True``, the default; Dockerfile apps): a RUN is
  read with a shell parser (``effects.run_effect``); the packages apps install
  (apt-get/apt, apk, dnf/yum, pip, npm ``-g``) become *install units* owned by
  the set of apps that install them — split, merged, reordered or reworded
  installs of the same packages are one unit, written once with its cleanup
  (``byeffect``); an app's own COPY/ADD of its build context and everything
  after it stay in the app, and so does a step writing files a later step
  deletes;
* ARG/ENV values are substituted into the instructions Docker substitutes
  them in (not RUN: the shell does that at run time, and history keeps ``$X``);
* from images, COPY/ADD/import steps also carry the layer's diff_id in the
  key (BuildKit's history text ``COPY app /app`` says nothing about the
  content); their RUN steps compare by text (a rebuilt ``apt-get install``
  has a new diff_id but is the same step);
* ``COPY --from=<stage>`` carries a hash of that stage's steps;
* metadata-only instructions (LABEL, CMD, ENTRYPOINT, EXPOSE, HEALTHCHECK,
  STOPSIGNAL, MAINTAINER, ONBUILD) do not change later steps, so they are
  kept out of the trie and re-attached to the app's own Dockerfile;
  ENV/ARG/WORKDIR/USER/SHELL/VOLUME change how later steps run, so they stay
  in the trie as zero-byte nodes (a shared trunk that holds only such
  steps does not become a base image of its own).

Dockerfiles layerlab cannot read faithfully raise :class:`~layerlab.errors.PlanError`
(a ``LayerlabError``) naming the file and line: unknown instructions,
heredocs (``RUN <<EOF``; dockerfile-parse splits them into bogus
instructions), instructions before ``FROM``, a Dockerfile without ``FROM``.
Sizes never are guessed: a step whose size no image tells is ``<NA>`` and so
is every total that needs it.

The package, one module per job: ``steps`` (the ``Step`` record and steps
from histories), ``dockerfile`` (``parse_dockerfile``), ``effects`` (what a
RUN does), ``byeffect`` (install units), ``trie`` (overlaying
the apps' chains and cutting the shared trunk into bases), ``result``
(``BasePlan``: Dockerfiles, frames, savings) and ``planner`` (``plan_bases``).
"""
from __future__ import annotations

from .dockerfile import ParsedDockerfile, parse_dockerfile
from .planner import plan_bases
from .result import BasePlan
from .steps import PlanError, Step, history_steps, normalise_created_by

__all__ = [
    "PlanError",
    "Step",
    "ParsedDockerfile",
    "BasePlan",
    "parse_dockerfile",
    "history_steps",
    "normalise_created_by",
    "plan_bases",
]
