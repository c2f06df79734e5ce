/* The AIGES C ABI as docs/aiges-compat.md section 5 states it, written for the test driver
 * independently of native/aiges/aiges_wrapper.h, so a layout slip in either one shows. */
#ifndef TEST_WRAPPER_ABI_H
#define TEST_WRAPPER_ABI_H

typedef struct ParamList {
  char* key;
  char* value;
  unsigned int vlen;
  struct ParamList* next;
} ParamList, *pParamList, *pConfig, *pDescList;

typedef int DataType;   /* 0 text, 1 audio, 2 image, 3 video, 4 per */
typedef int DataStatus; /* 0 begin, 1 continue, 2 end, 3 once */
typedef int CtrlType;   /* 0 meter-custom, 1 metrics-log, 2 trace-log */

typedef struct DataList {
  char* key;
  void* data;
  unsigned int len;
  DataType type;
  DataStatus status;
  pDescList desc;
  struct DataList* next;
} DataList, *pDataList;

typedef int (*wrapperCallback)(const void* usrTag, pDataList respData, int ret);

typedef int (*wrapperSetCtrl_t)(CtrlType, void*);
typedef int (*wrapperInit_t)(pConfig);
typedef int (*wrapperFini_t)(void);
typedef const char* (*wrapperError_t)(int);
typedef const char* (*wrapperVersion_t)(void);
typedef int (*wrapperLoadRes_t)(pDataList, unsigned int);
typedef int (*wrapperUnloadRes_t)(unsigned int);
typedef const void* (*wrapperCreate_t)(const char*, pParamList, wrapperCallback, unsigned int[],
                                       int, int*);
typedef int (*wrapperWrite_t)(const void*, pDataList);
typedef int (*wrapperRead_t)(const void*, pDataList*);
typedef int (*wrapperDestroy_t)(const void*);
typedef int (*wrapperExec_t)(const char*, pParamList, pDataList, pDataList*, unsigned int[], int);
typedef int (*wrapperExecFree_t)(const char*, pDataList*);
typedef int (*wrapperExecAsync_t)(const char*, pParamList, pDataList, wrapperCallback, int,
                                  unsigned int[], int);
typedef const char* (*wrapperDebugInfo_t)(const void*);

#endif
