"""Generated Python stubs of the gRPC contract ``proto/matconcept/v1/matconcept.proto``.

Do not edit the ``*_pb2*`` modules: regenerate them with ``python proto/generate.py`` (see that
script for why they live here rather than under ``proto/``).
"""
