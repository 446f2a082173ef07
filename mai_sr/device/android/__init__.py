"""Android devices over adb, split by concern: the client and device facts (`client`), what
each delegate needs by SoC (`libraries`), the two `benchmark_model` tools (`tools`) and the
runner (`runner`). `mai_sr.device.adb` re-exports the public names."""
