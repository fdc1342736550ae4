// Tests of this target live here.
