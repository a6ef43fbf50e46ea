"""The one thing pyproject.toml cannot say: the SDK's compiled accessors (``sdk/_accel.py``, Cython's pure-Python
mode). Optional: without a C compiler the install goes on and the SDK uses its pure-Python accessors."""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # a build without Cython (it is a build requirement in pyproject.toml): pure Python
    extensions = []
else:
    extensions = cythonize(
        [Extension("flagstream._accel", ["sdk/_accel.py"], optional=True)],
        compiler_directives={"language_level": 3},
        quiet=True,
    )

setup(ext_modules=extensions)
