#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rpn.h"

#define STACK_MAX 64

const char *rpn_message(enum rpn_status status)
{
    switch (status) {
    case RPN_DIV_ZERO:
        return "division by zero";
    case RPN_UNDERFLOW:
        return "stack underflow";
    case RPN_TOO_MANY:
        return "too many operands";
    case RPN_BAD_TOKEN:
        return "bad token";
    default:
        return "";
    }
}

enum rpn_status rpn_eval(const char *line, long *result)
{
    /* TODO: evaluate the expression (see README.md). */
    (void)line;
    (void)result;
    return RPN_BAD_TOKEN;
}
