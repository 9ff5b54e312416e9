/* Reads a sparc checkpoint with the HDF5 C API alone, by dataset and
 * attribute names (docs/checkpoint-format.md), with no sparc code: the
 * layout is self-describing. Prints one "key value" line per field read and
 * exits non-zero when a field is missing or has the wrong type or rank.
 * Usage: hdf5_reader CHECKPOINT.h5 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static void fail(const char* what) {
  printf("MISSING %s\n", what);
  failures++;
}

static long long attr_i64(hid_t obj, const char* name) {
  long long v = -1;
  if (H5Aexists(obj, name) <= 0) { fail(name); return v; }
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (H5Aread(a, H5T_NATIVE_LLONG, &v) < 0) fail(name);
  H5Aclose(a);
  return v;
}

static void attr_str(hid_t obj, const char* name, char* out, size_t size) {
  out[0] = '\0';
  if (H5Aexists(obj, name) <= 0) { fail(name); return; }
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  char* s = NULL;
  if (H5Aread(a, t, &s) < 0 || s == NULL) fail(name);
  else { snprintf(out, size, "%s", s); H5free_memory(s); }
  H5Tclose(t);
  H5Aclose(a);
}

/* Prints the shape of a dataset; returns its rank (-1: absent). */
static int shape(hid_t file, const char* path, hsize_t* dims) {
  if (H5Lexists(file, path, H5P_DEFAULT) <= 0) { fail(path); return -1; }
  hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  int rank = H5Sget_simple_extent_ndims(s);
  H5Sget_simple_extent_dims(s, dims, NULL);
  printf("%s", path);
  for (int i = 0; i < rank; ++i) printf(" %llu", (unsigned long long)dims[i]);
  printf("\n");
  H5Sclose(s);
  H5Dclose(d);
  return rank;
}

int main(int argc, char** argv) {
  if (argc != 2) { fprintf(stderr, "usage: hdf5_reader CHECKPOINT.h5\n"); return 2; }
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) { printf("cannot open %s\n", argv[1]); return 1; }
  char text[256];
  attr_str(f, "format", text, sizeof text);
  printf("format %s\n", text);
  printf("format_version %lld\n", attr_i64(f, "format_version"));
  attr_str(f, "method", text, sizeof text);
  printf("method %s\n", text);

  /* The resolved config: a scalar variable-length string. */
  if (H5Lexists(f, "config", H5P_DEFAULT) > 0) {
    hid_t d = H5Dopen2(f, "config", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    char* s = NULL;
    if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) < 0 || !s) fail("config");
    else { printf("config_has_method %d\n", strstr(s, "method:") != NULL); H5free_memory(s); }
    H5Tclose(t);
    H5Dclose(d);
  } else {
    fail("config");
  }

  hid_t cursor = H5Gopen2(f, "cursor", H5P_DEFAULT);
  if (cursor < 0) { fail("cursor"); return 1; }
  printf("cursor.task %lld\n", attr_i64(cursor, "task"));
  printf("cursor.in_task %lld\n", attr_i64(cursor, "in_task"));
  printf("cursor.global_step %lld\n", attr_i64(cursor, "global_step"));
  printf("cursor.epoch %lld\n", attr_i64(cursor, "epoch"));
  printf("cursor.sample_offset %lld\n", attr_i64(cursor, "sample_offset"));
  H5Gclose(cursor);

  /* Task names, then the first task's library entry by name. */
  hsize_t dims[4] = {0, 0, 0, 0};
  if (shape(f, "tasks", dims) == 1 && dims[0] > 0) {
    hid_t d = H5Dopen2(f, "tasks", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    char** names = calloc(dims[0], sizeof(char*));
    H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
    printf("first_task %s\n", names[0]);
    char path[512];
    hsize_t n = dims[0];
    snprintf(path, sizeof path, "library/%s/Z", names[0]);
    if (H5Lexists(f, "library", H5P_DEFAULT) > 0 && H5Lexists(f, path, H5P_DEFAULT) > 0) {
      shape(f, path, dims);
      snprintf(path, sizeof path, "library/%s/W", names[0]);
      shape(f, path, dims);
      snprintf(path, sizeof path, "library/%s/mu", names[0]);
      shape(f, path, dims);
      snprintf(path, sizeof path, "library/%s/eigenvalues", names[0]);
      shape(f, path, dims);
      snprintf(path, sizeof path, "library/%s/lora/layers.0.q/A", names[0]);
      shape(f, path, dims);
      snprintf(path, sizeof path, "library/%s/lora/layers.0.q/B", names[0]);
      shape(f, path, dims);
      /* Read Z's values: finite numbers. */
      snprintf(path, sizeof path, "library/%s/Z", names[0]);
      hid_t z = H5Dopen2(f, path, H5P_DEFAULT);
      hid_t zs = H5Dget_space(z);
      hssize_t count = H5Sget_simple_extent_npoints(zs);
      float* values = malloc(sizeof(float) * (size_t)count);
      H5Dread(z, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
      double norm = 0;
      for (hssize_t i = 0; i < count; ++i) norm += (double)values[i] * values[i];
      printf("Z_sum_of_squares %.6g\n", norm);
      free(values);
      H5Sclose(zs);
      H5Dclose(z);
    }
    snprintf(path, sizeof path, "subspaces/%s/W", names[n - 1]);
    shape(f, path, dims);
    H5Dvlen_reclaim(t, H5Dget_space(d), H5P_DEFAULT, names);
    free(names);
    H5Tclose(t);
    H5Dclose(d);
  }
  shape(f, "results/accuracy", dims);
  shape(f, "results/zero_shot", dims);
  shape(f, "metrics/history", dims);
  H5Fclose(f);
  printf("failures %d\n", failures);
  return failures ? 1 : 0;
}
