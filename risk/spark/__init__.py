"""Past one machine: the feature SQL compiled for Spark SQL, scoring through the registered pyfunc on Spark."""
