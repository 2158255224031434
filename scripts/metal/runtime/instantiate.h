// metal_run.py force-includes this after metal_shim.h, in place of
// mlx_instantiate.h. MLX's instantiate_kernel (kernels/defines.h) becomes
// nothing, so that only the kernels the generated adapters call are
// instantiated and compiled; with MR_LIST_KERNELS it becomes a marker from
// which metal_run.py reads each kernel's host name, function and template
// arguments in the preprocessed source.
#pragma once
#include "mlx/backend/metal/kernels/defines.h"
#undef instantiate_kernel
#ifdef MR_LIST_KERNELS
#define instantiate_kernel(name, func, ...) \
  __MR_KERNEL__ name | func | __VA_ARGS__ __MR_END__
#else
#define instantiate_kernel(name, func, ...)
#endif
