"""Studies: a TOML spec expanded into runs, executed durably, recorded in a SQLite store."""

import sys
import types


class _StudyModule(types.ModuleType):
    """``transferlab.study`` is this package and, called, the notebook API's ``study(spec, directory)``
    (transferlab.api.study): importing a submodule makes the package an attribute of ``transferlab``, so
    the function cannot live under the same name beside it."""

    def __call__(self, *args, **kwargs):
        from transferlab.api import study

        return study(*args, **kwargs)


sys.modules[__name__].__class__ = _StudyModule
